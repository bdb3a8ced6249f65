//! The plan's scheduling state: which actions are ready, which run, which
//! pools and worker slots they hold.
//!
//! One `Sched` per run, behind a mutex shared by the engine task and the
//! blocking threads that run actions. A thread that finishes an action
//! picks what it runs next itself ([`Sched::chain_after`],
//! [`Sched::pop_ready`]) and reports the finished action once its final
//! state is committed ([`Sched::complete`]), so a chain of actions never
//! leaves its thread and the engine is woken only for fan-out, failures
//! and the end of the plan.
//!
//! Invariants:
//! * an action's children become ready only in [`Sched::complete`], which
//!   is called after the action's final state is committed;
//! * `running` counts the worker slots in use: an action reserved by
//!   [`Sched::pop_ready`] or [`Sched::chain_after`] takes the slot of the
//!   caller (the engine counts new slots itself);
//! * a node holds its pools from reservation until its `execute` is over
//!   ([`Sched::release`], idempotent).

use super::{Node, St};
use crate::states::{ActionState, EventType};
use crate::store::apply::ActionTransition;
use crate::store::plans::ActionRow;
use serde_json::Value;
use std::collections::{BinaryHeap, HashMap};

/// Watcher's execution rules: STRICT (Sextant's default: an action whose
/// parent failed is CANCELLED), ALWAYS (children run whatever their parents
/// came to), ANY (a child runs only if its first parent's execute failed).
pub(super) use crate::states::ExecutionRule as Rule;

/// A ready action in the queue: highest priority first, then creation order.
#[derive(PartialEq)]
pub(super) struct Ready(pub f64, pub usize);

impl Eq for Ready {}

impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Ready {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}

/// An action that finished, as committed.
#[derive(Debug)]
pub(super) struct Completion {
    pub index: usize,
    pub state: St,
    /// Watcher's task result was False: `execute` ran and failed.
    pub execute_failed: bool,
    pub outputs: Option<Value>,
}

/// What a failed action's `on_failure` asks for.
pub(super) enum Stop {
    Continue,
    Halt(String),
    Rollback(String),
}

pub(super) struct Sched {
    pub nodes: Vec<Node>,
    /// How many parents of each action are not done yet.
    waiting: Vec<usize>,
    ready: BinaryHeap<Ready>,
    /// Pool occupancy, and each pool's limit.
    in_use: HashMap<(usize, Option<String>), u32>,
    limits: Vec<u32>,
    /// Whether a node holds its pools.
    holds_pools: Vec<bool>,
    rule: Rule,
    /// Worker slots in use.
    pub running: usize,
    pub max_workers: usize,
    /// Actions in the order they finished (a topological order).
    pub completed_order: Vec<usize>,
    /// CANCELLED decided in memory (STRICT), for the engine to commit.
    pub to_commit: Vec<ActionTransition>,
    /// Why the plan stops starting actions (on_failure: stop or rollback).
    pub stopping: Option<String>,
    pub rollback: bool,
    /// The plan is being cancelled.
    pub cancelled: bool,
    /// Why this applier stops without ending the plan (a commit to the
    /// store failed, or the service is shutting down): nothing more starts,
    /// nothing is cancelled, and the plan stays ONGOING for a resume.
    pub interrupted: Option<String>,
}

impl Sched {
    pub(super) fn new(nodes: Vec<Node>, limits: Vec<u32>, rule: Rule, max_workers: usize) -> Self {
        let waiting = nodes
            .iter()
            .map(|n| {
                n.parents
                    .iter()
                    .filter(|&&p| !nodes[p].state.done())
                    .count()
            })
            .collect();
        let n = nodes.len();
        Self {
            nodes,
            waiting,
            ready: BinaryHeap::new(),
            in_use: HashMap::new(),
            limits,
            holds_pools: vec![false; n],
            rule,
            running: 0,
            max_workers: max_workers.max(1),
            completed_order: Vec::new(),
            to_commit: Vec::new(),
            stopping: None,
            rollback: false,
            cancelled: false,
            interrupted: None,
        }
    }

    /// Settles every PENDING action whose parents are all done (the start
    /// of a run, or a resumed one).
    pub(super) fn settle_initial(&mut self) {
        let mut done = Vec::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].state == St::Pending && self.waiting[i] == 0 && self.settle(i) {
                done.push(i);
            }
        }
        self.cascade(done);
    }

    /// Whether new actions may start.
    pub(super) fn open(&self) -> bool {
        self.stopping.is_none() && !self.cancelled && self.interrupted.is_none()
    }

    fn fits(&self, i: usize) -> bool {
        self.nodes[i]
            .pools
            .iter()
            .all(|k| self.in_use.get(k).copied().unwrap_or(0) < self.limits[k.0])
    }

    fn reserve(&mut self, i: usize) {
        for k in &self.nodes[i].pools {
            *self.in_use.entry(k.clone()).or_default() += 1;
        }
        self.holds_pools[i] = true;
        self.nodes[i].state = St::Running;
    }

    /// Frees the pools of an action whose `execute` is over.
    pub(super) fn release(&mut self, i: usize) {
        if !std::mem::take(&mut self.holds_pools[i]) {
            return;
        }
        for k in &self.nodes[i].pools {
            if let Some(c) = self.in_use.get_mut(k) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// An action's `execute` is over (its final state is not committed
    /// yet): its pools are free, and a child chained after it can read its
    /// outputs.
    pub(super) fn executed(&mut self, i: usize, outputs: Option<&Value>) {
        self.release(i);
        if let Some(o) = outputs {
            self.nodes[i].row.outputs = Some(o.clone());
        }
    }

    /// Reserves the most urgent ready action that fits its pools.
    pub(super) fn pop_ready(&mut self) -> Option<usize> {
        if !self.open() {
            return None;
        }
        let mut blocked = Vec::new();
        let mut found = None;
        while let Some(Ready(p, i)) = self.ready.pop() {
            if self.nodes[i].state != St::Pending {
                continue;
            }
            if !self.fits(i) {
                blocked.push(Ready(p, i));
                continue;
            }
            found = Some(i);
            break;
        }
        self.ready.extend(blocked);
        if let Some(i) = found {
            self.reserve(i);
        }
        found
    }

    /// Whether a ready action waits for a free worker slot.
    pub(super) fn wants_workers(&self) -> bool {
        self.open() && self.running < self.max_workers && !self.ready.is_empty()
    }

    /// Reserves the child of `i` (which just finished as `state`, not yet
    /// committed) that `i` was the last parent of, if it would be ready and
    /// is at least as urgent as any ready action: the thread that ran `i`
    /// runs it next, and `i`'s final state is committed with the child's
    /// ONGOING. Nothing else sees the child until then.
    pub(super) fn chain_after(&mut self, i: usize, state: St) -> Option<usize> {
        if !self.open() || self.rule == Rule::Any {
            return None;
        }
        if self.rule == Rule::Strict && !matches!(state, St::Succeeded | St::Skipped) {
            return None;
        }
        let nodes = &self.nodes;
        let best = nodes[i]
            .children
            .iter()
            .copied()
            .filter(|&c| nodes[c].state == St::Pending && self.waiting[c] == 1)
            .filter(|&c| {
                nodes[c].parents.iter().all(|&p| {
                    p == i
                        || match self.rule {
                            Rule::Strict => {
                                !matches!(nodes[p].state, St::Failed | St::Cancelled | St::Ignored)
                            }
                            _ => nodes[p].state != St::Ignored,
                        }
                })
            })
            .filter(|&c| self.fits(c))
            .max_by(|&a, &b| Ready(nodes[a].priority, a).cmp(&Ready(nodes[b].priority, b)))?;
        if let Some(top) = self.ready.peek()
            && *top > Ready(nodes[best].priority, best)
        {
            return None;
        }
        self.reserve(best);
        Some(best)
    }

    /// Records a committed final state: the action's children whose
    /// parents are all done are settled (ready, CANCELLED or left out),
    /// and the action's `on_failure` is returned when it failed.
    pub(super) fn complete(&mut self, c: Completion, on_failure: impl Fn(&ActionRow) -> Stop) {
        let i = c.index;
        self.release(i);
        let n = &mut self.nodes[i];
        n.state = c.state;
        n.execute_failed = c.execute_failed;
        if let Some(o) = c.outputs {
            n.row.outputs = Some(o);
        }
        self.completed_order.push(i);
        if c.state == St::Failed && self.stopping.is_none() {
            match on_failure(&self.nodes[i].row) {
                Stop::Continue => {}
                Stop::Halt(why) => self.stopping = Some(why),
                Stop::Rollback(why) => {
                    self.stopping = Some(why);
                    self.rollback = true;
                }
            }
        }
        self.cascade(vec![i]);
    }

    /// Children of done actions whose parents are all done: settled, and
    /// so on down (a worklist, so a cancellation cascades without
    /// rescanning the plan).
    fn cascade(&mut self, mut done: Vec<usize>) {
        while let Some(d) = done.pop() {
            for k in 0..self.nodes[d].children.len() {
                let c = self.nodes[d].children[k];
                self.waiting[c] = self.waiting[c].saturating_sub(1);
                if self.waiting[c] == 0 && self.nodes[c].state == St::Pending && self.settle(c) {
                    done.push(c);
                }
            }
        }
    }

    /// Decides what happens to a PENDING action whose parents are all
    /// done: ready, CANCELLED (STRICT, a parent failed), or left out (ANY).
    /// Returns whether it is done.
    fn settle(&mut self, i: usize) -> bool {
        let nodes = &self.nodes;
        let ps = &nodes[i].parents;
        match self.rule {
            Rule::Strict => {
                if let Some(&bad) = ps
                    .iter()
                    .find(|&&p| matches!(nodes[p].state, St::Failed | St::Cancelled | St::Ignored))
                {
                    let msg = format!(
                        "Cancelled: its parent {} is {}.",
                        nodes[bad].row.name,
                        if nodes[bad].state == St::Failed {
                            ActionState::Failed
                        } else {
                            ActionState::Cancelled
                        }
                    );
                    self.to_commit.push(super::row_transition(
                        &nodes[i].row,
                        &[ActionState::Pending],
                        ActionState::Cancelled,
                        Some(msg),
                        None,
                        EventType::ActionUpdate,
                    ));
                    self.nodes[i].state = St::Cancelled;
                    return true;
                }
            }
            Rule::Any => {
                let run = match ps.first() {
                    None => true,
                    Some(&f) => nodes[f].state != St::Ignored && nodes[f].execute_failed,
                };
                if !run {
                    self.nodes[i].state = St::Ignored;
                    return true;
                }
            }
            Rule::Always => {
                if ps.iter().any(|&p| nodes[p].state == St::Ignored) {
                    self.nodes[i].state = St::Ignored;
                    return true;
                }
            }
        }
        self.ready.push(Ready(self.nodes[i].priority, i));
        false
    }

    /// Marks every PENDING action CANCELLED in memory and returns the
    /// transitions to commit; nothing queued starts any more.
    pub(super) fn cancel_pending(
        &mut self,
        message: Option<String>,
        event: EventType,
    ) -> Vec<ActionTransition> {
        self.ready.clear();
        let mut out = Vec::new();
        for n in self.nodes.iter_mut().filter(|n| n.state == St::Pending) {
            out.push(super::row_transition(
                &n.row,
                &[ActionState::Pending],
                ActionState::Cancelled,
                message.clone(),
                None,
                event,
            ));
            n.state = St::Cancelled;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parents: Vec<usize>, priority: f64) -> Node {
        let row = super::super::test_row(name);
        Node {
            row,
            parents,
            children: Vec::new(),
            state: St::Pending,
            execute_failed: false,
            pools: Vec::new(),
            priority,
            refs: Vec::new(),
        }
    }

    fn sched(mut nodes: Vec<Node>, rule: Rule) -> Sched {
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        let mut s = Sched::new(nodes, Vec::new(), rule, 4);
        s.settle_initial();
        s
    }

    fn done(i: usize, state: St) -> Completion {
        Completion {
            index: i,
            state,
            execute_failed: false,
            outputs: None,
        }
    }

    #[test]
    fn a_chain_runs_on_one_thread_and_children_wait_for_the_commit() {
        // a -> b -> c, and d -> b.
        let mut s = sched(
            vec![
                node("a", vec![], 3.0),
                node("b", vec![0, 3], 2.0),
                node("c", vec![1], 1.0),
                node("d", vec![], 0.5),
            ],
            Rule::Strict,
        );
        assert_eq!(s.pop_ready(), Some(0));
        // b still waits for d: a's thread cannot take it.
        assert_eq!(s.chain_after(0, St::Succeeded), None);
        s.complete(done(0, St::Succeeded), |_| Stop::Continue);
        assert_eq!(s.pop_ready(), Some(3));
        // d was b's last parent: b is reserved, and is not in the queue.
        assert_eq!(s.chain_after(3, St::Succeeded), Some(1));
        assert_eq!(s.nodes[1].state, St::Running);
        s.complete(done(3, St::Succeeded), |_| Stop::Continue);
        assert_eq!(s.pop_ready(), None, "b is reserved, c waits for b");
        // b failed: STRICT cancels c and nothing is chained.
        assert_eq!(s.chain_after(1, St::Failed), None);
        s.complete(done(1, St::Failed), |_| Stop::Continue);
        assert_eq!(s.nodes[2].state, St::Cancelled);
        assert_eq!(s.to_commit.len(), 1);
        assert_eq!(s.completed_order, vec![0, 3, 1]);
    }

    #[test]
    fn a_more_urgent_ready_action_goes_before_the_chained_child() {
        let mut s = sched(
            vec![
                node("a", vec![], 5.0),
                node("b", vec![0], 1.0),
                node("x", vec![], 4.0),
            ],
            Rule::Always,
        );
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.chain_after(0, St::Succeeded), None);
        s.complete(done(0, St::Succeeded), |_| Stop::Continue);
        assert_eq!(s.pop_ready(), Some(2));
        assert_eq!(s.pop_ready(), Some(1));
    }

    #[test]
    fn stop_closes_the_plan_to_new_starts() {
        let mut s = sched(
            vec![node("a", vec![], 1.0), node("b", vec![], 1.0)],
            Rule::Always,
        );
        assert_eq!(s.pop_ready(), Some(0));
        s.complete(done(0, St::Failed), |_| Stop::Halt("a failed".into()));
        assert!(!s.open());
        assert_eq!(s.pop_ready(), None);
        let t = s.cancel_pending(None, EventType::ActionUpdate);
        assert_eq!(t.len(), 1);
        assert_eq!(s.nodes[1].state, St::Cancelled);
    }

    #[test]
    fn pools_hold_until_released() {
        let mut nodes = vec![node("a", vec![], 2.0), node("b", vec![], 1.0)];
        nodes[0].pools = vec![(0, None)];
        nodes[1].pools = vec![(0, None)];
        let mut s = Sched::new(nodes, vec![1], Rule::Strict, 4);
        s.settle_initial();
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.pop_ready(), None, "the pool is full");
        s.release(0);
        s.release(0);
        assert_eq!(s.pop_ready(), Some(1));
        assert_eq!(s.pop_ready(), None);
    }
}
