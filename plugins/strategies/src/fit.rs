//! A first-fit index over hosts' free room: the hosts sit in slots in an
//! order of preference, and [`FitIndex::first_fit`] finds the first slot
//! whose room covers a demand in every dimension in O(log n) when room is
//! plentiful (a segment tree of the per-dimension maxima prunes every range
//! where some dimension is short), instead of a scan of every host.

/// Free room per dimension of each slot; a slot with no room (a host that
/// takes nothing) holds `-inf` everywhere.
pub struct FitIndex<const D: usize> {
    leaves: usize,
    max: Vec<[f64; D]>,
}

/// Slack for the pruning only: a range is skipped when its best room is
/// short of the demand by more than this, so rounding never hides a host
/// that the caller's exact check would accept.
const SLACK: f64 = 1e-6;

impl<const D: usize> FitIndex<D> {
    /// `n` slots, all without room.
    pub fn new(n: usize) -> Self {
        let leaves = n.max(1).next_power_of_two();
        Self {
            leaves,
            max: vec![[f64::NEG_INFINITY; D]; 2 * leaves],
        }
    }

    /// Sets slot `k`'s room.
    pub fn set(&mut self, k: usize, room: [f64; D]) {
        let mut p = self.leaves + k;
        self.max[p] = room;
        while p > 1 {
            p /= 2;
            let (l, r) = (self.max[2 * p], self.max[2 * p + 1]);
            self.max[p] = std::array::from_fn(|d| l[d].max(r[d]));
        }
    }

    /// Slot `k` takes nothing.
    pub fn clear(&mut self, k: usize) {
        self.set(k, [f64::NEG_INFINITY; D]);
    }

    /// The first slot whose room covers `need` and that `accept` (the
    /// caller's exact check) accepts.
    pub fn first_fit(&self, need: [f64; D], accept: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut accept = accept;
        self.descend(1, need, &mut accept)
    }

    fn descend(
        &self,
        p: usize,
        need: [f64; D],
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let m = &self.max[p];
        if (0..D).any(|d| m[d] < need[d] - SLACK) {
            return None;
        }
        if p >= self.leaves {
            let k = p - self.leaves;
            return accept(k).then_some(k);
        }
        self.descend(2 * p, need, accept)
            .or_else(|| self.descend(2 * p + 1, need, accept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_slot_with_room_in_every_dimension() {
        let mut f = FitIndex::<2>::new(5);
        f.set(0, [1.0, 10.0]);
        f.set(1, [5.0, 1.0]);
        f.set(2, [5.0, 10.0]);
        f.set(4, [9.0, 9.0]);
        assert_eq!(f.first_fit([1.0, 1.0], |_| true), Some(0));
        assert_eq!(f.first_fit([2.0, 2.0], |_| true), Some(2));
        assert_eq!(f.first_fit([2.0, 2.0], |k| k != 2), Some(4));
        assert_eq!(f.first_fit([6.0, 9.5], |_| true), None);
        f.clear(2);
        assert_eq!(f.first_fit([2.0, 2.0], |_| true), Some(4));
        assert_eq!(FitIndex::<1>::new(0).first_fit([0.0], |_| true), None);
    }
}
