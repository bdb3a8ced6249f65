//! Ancestry queries on a checked plan's DAG: is action `r` an ancestor of
//! action `a`, for many pairs at once, without a transitive closure.
//!
//! The DAG is given as parent rows, as [`super::check`] returns them:
//! `parents[start[k]..start[k + 1]]` are the parents of action `k`. It must
//! be acyclic (`check` refuses a cycle).
//!
//! Each action gets its rank in a topological order (Kahn's algorithm,
//! O(n + e)). An ancestor always ranks lower than its descendants, so a
//! search between `r` and `a` never leaves the ranks between theirs:
//!
//! - a pair with `rank[r] >= rank[a]` is refused without searching;
//! - an action referenced by one action is looked for from that action
//!   back through parents, stopping as soon as it is found;
//! - an action referenced by several is searched once, forward through
//!   children up to the highest-ranked referencing action, stopping once
//!   every referencing action is reached.
//!
//! A search is at worst O(n + e), one per referenced action; in plans where
//! references name nearby actions (a parent, a grandparent) or a few shared
//! ones (a token fetched once), the whole check is about linear.

/// Whether each `(action, referenced)` pair of `queries` has `referenced`
/// as a proper ancestor of `action`; `false` for a pair naming an action
/// out of range.
pub fn ancestors_hold(start: &[usize], parents: &[usize], queries: &[(usize, usize)]) -> Vec<bool> {
    let n = start.len().saturating_sub(1);
    let mut holds = vec![false; queries.len()];
    if queries.is_empty() || n == 0 {
        return holds;
    }
    let parents_of = |k: usize| &parents[start[k]..start[k + 1]];
    // Children rows, from the parent rows.
    let mut child_start = vec![0usize; n + 1];
    for &p in parents {
        child_start[p + 1] += 1;
    }
    for k in 0..n {
        child_start[k + 1] += child_start[k];
    }
    let mut children = vec![0usize; parents.len()];
    let mut next = child_start.clone();
    for c in 0..n {
        for &p in parents_of(c) {
            children[next[p]] = c;
            next[p] += 1;
        }
    }
    let children_of = |k: usize| &children[child_start[k]..child_start[k + 1]];
    // Ranks in a topological order (Kahn's algorithm from the roots). An
    // action on a cycle keeps usize::MAX and is never an ancestor.
    let mut rank = vec![usize::MAX; n];
    let mut waiting: Vec<usize> = (0..n).map(|k| start[k + 1] - start[k]).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&k| waiting[k] == 0).collect();
    let mut ranked = 0;
    while let Some(k) = ready.pop() {
        rank[k] = ranked;
        ranked += 1;
        for &c in children_of(k) {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(c);
            }
        }
    }
    drop(waiting);
    // Queries grouped by the referenced action.
    let mut by_target: Vec<usize> = (0..queries.len())
        .filter(|&q| {
            let (a, r) = queries[q];
            a < n && r < n && rank[r] < rank[a]
        })
        .collect();
    by_target.sort_unstable_by_key(|&q| queries[q].1);
    // Search marks, stamped with the search's number: never cleared.
    let mut mark = vec![0u32; n];
    let mut stamp = 0u32;
    let mut stack = Vec::new();
    for group in by_target.chunk_by(|&x, &y| queries[x].1 == queries[y].1) {
        let r = queries[group[0]].1;
        stamp += 1;
        stack.clear();
        if let [q] = group {
            // Back from the one referencing action.
            let a = queries[*q].0;
            stack.extend_from_slice(parents_of(a));
            while let Some(p) = stack.pop() {
                if p == r {
                    holds[*q] = true;
                    break;
                }
                if mark[p] != stamp && rank[p] > rank[r] {
                    mark[p] = stamp;
                    stack.extend_from_slice(parents_of(p));
                }
            }
        } else {
            // Forward from the referenced action, up to the highest rank
            // that references it.
            let limit = group.iter().map(|&q| rank[queries[q].0]).max();
            let limit = limit.unwrap_or(0);
            let mut left: usize = group.len();
            // The referencing actions, marked with the stamp after this one.
            let target_stamp = stamp + 1;
            for &q in group {
                mark[queries[q].0] = target_stamp;
            }
            stack.push(r);
            while let Some(k) = stack.pop() {
                for &c in children_of(k) {
                    if rank[c] > limit || mark[c] == stamp {
                        continue;
                    }
                    if mark[c] == target_stamp {
                        left -= 1;
                    }
                    mark[c] = stamp;
                    stack.push(c);
                }
                if left == 0 {
                    break;
                }
            }
            for &q in group {
                holds[q] = mark[queries[q].0] == stamp;
            }
            stamp += 1;
        }
    }
    holds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parent rows from per-action parent lists.
    fn rows(parents: &[&[usize]]) -> (Vec<usize>, Vec<usize>) {
        let mut start = vec![0];
        let mut flat = Vec::new();
        for p in parents {
            flat.extend_from_slice(p);
            start.push(flat.len());
        }
        (start, flat)
    }

    /// The plain answer: every ancestor by walking all parents.
    fn is_ancestor(parents: &[&[usize]], a: usize, r: usize) -> bool {
        let mut seen = vec![false; parents.len()];
        let mut stack = parents[a].to_vec();
        while let Some(p) = stack.pop() {
            if p == r {
                return true;
            }
            if !std::mem::replace(&mut seen[p], true) {
                stack.extend_from_slice(parents[p]);
            }
        }
        false
    }

    #[test]
    fn ancestors_are_found_and_others_refused() {
        // 0 -> 1 -> 3, 0 -> 2, 4 alone; 5 waits for 3 and 4.
        let p: &[&[usize]] = &[&[], &[0], &[0], &[1], &[], &[3, 4]];
        let (start, parents) = rows(p);
        let queries = [
            (3, 0),
            (3, 1),
            (3, 2),
            (2, 1),
            (5, 0),
            (5, 4),
            (5, 2),
            (0, 0),
            (1, 3),
            (9, 0),
        ];
        let got = ancestors_hold(&start, &parents, &queries);
        let want = [
            true, true, false, false, true, true, false, false, false, false,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn agrees_with_a_plain_walk_on_random_dags() {
        // Deterministic xorshift; each action waits for up to three of the
        // twenty before it, in a shuffled creation order.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m as u64) as usize
        };
        for _ in 0..20 {
            let n = 200;
            // Action k of the DAG is placed at slot perm[k].
            let mut perm: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                perm.swap(i, next(i + 1));
            }
            let mut lists: Vec<Vec<usize>> = vec![Vec::new(); n];
            for k in 1..n {
                for _ in 0..next(4) {
                    let p = k - 1 - next(k.min(20));
                    if !lists[perm[k]].contains(&perm[p]) {
                        lists[perm[k]].push(perm[p]);
                    }
                }
            }
            let p: Vec<&[usize]> = lists.iter().map(Vec::as_slice).collect();
            let (start, parents) = rows(&p);
            // Many single references, and a few shared targets.
            let mut queries: Vec<(usize, usize)> = (0..400).map(|_| (next(n), next(n))).collect();
            for a in 0..n {
                queries.push((a, perm[5]));
            }
            let got = ancestors_hold(&start, &parents, &queries);
            for (q, &(a, r)) in queries.iter().enumerate() {
                assert_eq!(got[q], is_ancestor(&p, a, r), "query {a} <- {r}");
            }
        }
    }
}
