//! Flows and alternatives at run time (docs/flows.md): which alternative of
//! each group is active, which flow failed and what its `on_failure` asks
//! for, and the work the engine must do about it (switch to the next
//! alternative, commit a flow's failure, roll a flow back).
//!
//! A flat plan has no [`FlowRun`] (`Sched::flows` is `None`) and runs as
//! before. The decisions are taken here, under the scheduler's lock, in
//! memory; [`Work`] items carry them to the engine, which commits each one
//! with its event before acting on it (`flow_work.rs`).

use super::*;
use crate::states::FlowState;
use crate::store::flows::{FlowRow, ScopeRow};
use std::collections::VecDeque;

/// What the engine must do for the flows.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Work {
    /// Alternative `to` replaces `from`, which failed for good: commit the
    /// choice (unless it already was), settle `from` (revert it if it ran),
    /// then let `to` run.
    Switch { from: usize, to: usize },
    /// A flow failed: commit it (FAILED) with the action that failed it.
    FlowFailed { flow: usize, cause: usize },
}

/// A flow at run time.
#[derive(Debug)]
pub(super) struct FlowRt {
    pub name: String,
    parent: Option<usize>,
    pub on_failure: OnFailure,
    pub state: FlowState,
    /// Its actions that have not started never will.
    pub stopped: bool,
    /// Its rollback is wanted and has not ended.
    pub rollback_due: bool,
    /// What failed it.
    pub cause: Option<String>,
}

/// What a failure or a success asks of the scheduler.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// PENDING actions to cancel, with their message.
    pub cancel: Vec<(usize, String)>,
    /// PENDING alternatives no longer needed, with their message.
    pub skip: Vec<(usize, String)>,
}

/// What a failure means once its scopes have handled it.
pub(super) enum Failure {
    /// Handled inside a flow or by an alternative.
    Contained(Effects),
    /// Reached the plan's top: the policy's `on_failure` applies.
    Escalated(Effects),
}

/// The flows and alternatives of a run.
pub(super) struct FlowRun {
    flow_of: Vec<Option<usize>>,
    /// Group and rank of each action in a group of alternatives.
    group_of: Vec<Option<(usize, usize)>>,
    groups: Vec<Vec<usize>>,
    /// Alternatives that must not run (yet); see also `flow_started`.
    dormant: Vec<bool>,
    /// Each flow's group of alternative flows and its rank there.
    flow_group_of: Vec<Option<(usize, usize)>>,
    flow_groups: Vec<Vec<usize>>,
    /// False for an alternative flow not started: its actions wait.
    flow_started: Vec<bool>,
    /// Alternative flows to start once the flow before them is rolled back.
    flow_switches: Vec<(usize, usize)>,
    /// The store's marks.
    started: Vec<bool>,
    settled: Vec<bool>,
    pub reverted: Vec<bool>,
    pub flows: Vec<FlowRt>,
    pub work: VecDeque<Work>,
}

impl FlowRun {
    /// The run-time structure of a plan, from its stored flows and scopes;
    /// `None` for a flat plan. Adds, in memory, an edge from every
    /// alternative to each dependent of its primary: dependents wait for
    /// the whole group.
    pub(super) fn build(
        nodes: &mut [Node],
        flows: Vec<FlowRow>,
        scopes: Vec<ScopeRow>,
    ) -> Option<FlowRun> {
        if flows.is_empty() && scopes.is_empty() {
            return None;
        }
        let n = nodes.len();
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (x.row.name.as_str(), i))
            .collect();
        let flow_index: HashMap<&str, usize> = flows
            .iter()
            .enumerate()
            .map(|(k, f)| (f.name.as_str(), k))
            .collect();
        // Groups of alternative flows: the primary, then by rank.
        let mut flow_groups: Vec<Vec<usize>> = Vec::new();
        let mut flow_group_of: Vec<Option<(usize, usize)>> = vec![None; flows.len()];
        {
            let mut by_primary: HashMap<usize, Vec<(u32, usize)>> = HashMap::new();
            for (k, f) in flows.iter().enumerate() {
                if let Some((p, r)) = &f.alternative_of
                    && let Some(&pk) = flow_index.get(p.as_str())
                {
                    by_primary.entry(pk).or_default().push((*r, k));
                }
            }
            let mut primaries: Vec<usize> = by_primary.keys().copied().collect();
            primaries.sort();
            for pk in primaries {
                let mut alts = by_primary.remove(&pk).unwrap_or_default();
                alts.sort();
                let mut members = vec![pk];
                members.extend(alts.into_iter().map(|(_, k)| k));
                for (rank, &m) in members.iter().enumerate() {
                    flow_group_of[m] = Some((flow_groups.len(), rank));
                }
                flow_groups.push(members);
            }
        }
        let has_next =
            |k: usize| flow_group_of[k].is_some_and(|(g, r)| flow_groups[g].len() > r + 1);
        let mut run = FlowRun {
            flow_started: flows.iter().map(|f| f.started).collect(),
            flow_switches: Vec::new(),
            flow_of: vec![None; n],
            group_of: vec![None; n],
            groups: Vec::new(),
            dormant: vec![false; n],
            started: vec![true; n],
            settled: vec![false; n],
            reverted: vec![false; n],
            flows: flows
                .iter()
                .enumerate()
                .map(|(k, f)| {
                    // A flow with an alternative left is settled (rolled
                    // back) before the alternative starts.
                    let undo = f.on_failure == OnFailure::Rollback || has_next(k);
                    FlowRt {
                        name: f.name.clone(),
                        parent: f.parent.as_deref().and_then(|p| flow_index.get(p).copied()),
                        on_failure: f.on_failure,
                        state: f.state,
                        stopped: f.state != FlowState::Pending
                            && (f.on_failure != OnFailure::Continue || has_next(k)),
                        rollback_due: undo
                            && matches!(f.state, FlowState::Failed | FlowState::RollingBack),
                        cause: f.status_message.clone(),
                    }
                })
                .collect(),
            work: VecDeque::new(),
            flow_group_of,
            flow_groups,
        };
        let mut group_index: HashMap<String, usize> = HashMap::new();
        for s in &scopes {
            let Some(&i) = index.get(s.name.as_str()) else {
                continue;
            };
            run.flow_of[i] = s.flow.as_deref().and_then(|f| flow_index.get(f).copied());
            run.started[i] = s.started;
            run.settled[i] = s.settled;
            run.reverted[i] = s.reverted;
            if let Some((primary, rank)) = &s.primary {
                let g = *group_index.entry(primary.clone()).or_insert_with(|| {
                    run.groups.push(Vec::new());
                    run.groups.len() - 1
                });
                let rank = *rank as usize;
                let members = &mut run.groups[g];
                if members.len() <= rank {
                    members.resize(rank + 1, usize::MAX);
                }
                members[rank] = i;
                run.group_of[i] = Some((g, rank));
            }
        }
        for members in &mut run.groups {
            members.retain(|&m| m != usize::MAX);
        }
        // The dependents of a flow with alternatives (actions outside it
        // with a parent in it) wait for the last actions of every
        // alternative flow too.
        for g in 0..run.flow_groups.len() {
            let members = run.flow_groups[g].clone();
            let primary = members[0];
            let deps: Vec<usize> = (0..n)
                .filter(|&c| {
                    !run.member(c, primary)
                        && nodes[c].parents.iter().any(|&p| run.member(p, primary))
                })
                .collect();
            for &alt in &members[1..] {
                let sinks: Vec<usize> = (0..n)
                    .filter(|&i| {
                        run.member(i, alt) && !nodes[i].children.iter().any(|&c| run.member(c, alt))
                    })
                    .collect();
                for &sink in &sinks {
                    for &c in &deps {
                        if !nodes[c].parents.contains(&sink) {
                            nodes[c].parents.push(sink);
                            nodes[sink].children.push(c);
                        }
                    }
                }
            }
        }
        for (g, members) in run.groups.iter().enumerate() {
            for (rank, &m) in members.iter().enumerate() {
                run.group_of[m] = Some((g, rank));
                // Not started, or started while the one before was not
                // settled yet (the applier stopped in between).
                run.dormant[m] = rank > 0 && (!run.started[m] || !run.settled[members[rank - 1]]);
            }
            // The dependents of the primary wait for every alternative.
            let primary = members[0];
            let dependents: Vec<usize> = nodes[primary].children.clone();
            for &alt in &members[1..] {
                for &c in &dependents {
                    if !nodes[c].parents.contains(&alt) {
                        nodes[c].parents.push(alt);
                        nodes[alt].children.push(c);
                    }
                }
            }
        }
        Some(run)
    }

    /// Whether nothing is left for the engine to do.
    pub(super) fn idle(&self) -> bool {
        self.work.is_empty() && self.flow_switch_ready().is_none()
    }

    /// Whether `i` must not run yet: an alternative not switched to, or an
    /// action of an alternative flow not started.
    pub(super) fn is_dormant(&self, i: usize) -> bool {
        self.dormant[i] || self.scopes_of(i).into_iter().any(|f| !self.flow_started[f])
    }

    /// A flow switch whose rollback is over.
    pub(super) fn flow_switch_ready(&self) -> Option<(usize, usize)> {
        self.flow_switches
            .iter()
            .copied()
            .find(|&(from, _)| !self.flows[from].rollback_due)
    }

    /// Whether the choice to start flow `to` is in the store.
    pub(super) fn flow_started(&self, to: usize) -> bool {
        self.flow_started[to]
    }

    /// A flow's rank among its alternatives (0: the primary, or alone).
    pub(super) fn flow_rank(&self, f: usize) -> usize {
        self.flow_group_of[f].map_or(0, |(_, r)| r)
    }

    /// Flow `to` started: its actions, to be settled now.
    pub(super) fn flow_switched(&mut self, from: usize, to: usize, nodes: &[Node]) -> Vec<usize> {
        self.flow_switches.retain(|&s| s != (from, to));
        self.flow_started[to] = true;
        (0..nodes.len())
            .filter(|&i| self.member(i, to) && nodes[i].state == St::Pending)
            .collect()
    }

    /// Whether flow `f` succeeded: started, not failed, every action done
    /// well (or replaced by an alternative that did); `skipped` counts as
    /// done.
    fn flow_succeeded(&self, f: usize, nodes: &[Node], skipped: &[usize]) -> bool {
        self.flow_started[f]
            && self.flows[f].cause.is_none()
            && self.flows[f].state == FlowState::Pending
            && nodes.iter().enumerate().all(|(i, n)| {
                !self.member(i, f)
                    || matches!(n.state, St::Succeeded | St::Skipped)
                    || skipped.contains(&i)
                    || (n.state == St::Failed && self.superseded_action(i, nodes))
            })
    }

    /// The flow `i` is in, and every flow around it.
    fn scopes_of(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = self.flow_of[i];
        while let Some(f) = cur {
            out.push(f);
            cur = self.flows[f].parent;
        }
        out
    }

    /// Whether flow `f` is `of` or nested in it.
    fn within(&self, mut f: usize, of: usize) -> bool {
        loop {
            if f == of {
                return true;
            }
            match self.flows[f].parent {
                Some(p) => f = p,
                None => return false,
            }
        }
    }

    /// Whether `i` is in flow `f` (directly or in a flow nested in it).
    pub(super) fn member(&self, i: usize, f: usize) -> bool {
        self.flow_of[i].is_some_and(|g| self.within(g, f))
    }

    /// Why `i` must not start: a flow it is in was stopped.
    pub(super) fn blocked(&self, i: usize) -> Option<String> {
        self.scopes_of(i)
            .into_iter()
            .find(|&f| self.flows[f].stopped)
            .map(|f| {
                format!(
                    "Cancelled: its flow {} failed (on_failure: {}).",
                    self.flows[f].name,
                    self.flows[f].on_failure.as_str()
                )
            })
    }

    /// Whether `i` may start now.
    pub(super) fn may_start(&self, i: usize) -> bool {
        !self.dormant[i] && self.blocked(i).is_none()
    }

    /// Whether failed action `p` was replaced by an alternative that
    /// succeeded, or its flow by an alternative flow that did: its
    /// dependents may run.
    pub(super) fn superseded(&self, p: usize, nodes: &[Node]) -> bool {
        self.superseded_action(p, nodes)
            || self.scopes_of(p).into_iter().any(|f| {
                self.flow_group_of[f].is_some_and(|(g, r)| {
                    self.flow_groups[g][r + 1..]
                        .iter()
                        .any(|&alt| self.flow_succeeded(alt, nodes, &[]))
                })
            })
    }

    fn superseded_action(&self, p: usize, nodes: &[Node]) -> bool {
        let Some((g, rank)) = self.group_of[p] else {
            return false;
        };
        self.groups[g][rank + 1..]
            .iter()
            .any(|&m| nodes[m].state == St::Succeeded)
    }

    /// An action succeeded (or was skipped): the alternatives after it are
    /// not needed.
    pub(super) fn on_done(&mut self, i: usize, nodes: &[Node]) -> Effects {
        let mut e = self.on_done_action(i, nodes);
        // A flow that succeeded: its later alternative flows are not needed.
        let skipped: Vec<usize> = e.skip.iter().map(|(k, _)| *k).collect();
        for f in self.scopes_of(i) {
            let Some((g, r)) = self.flow_group_of[f] else {
                continue;
            };
            if !self.flow_succeeded(f, nodes, &skipped) {
                continue;
            }
            for &alt in &self.flow_groups[g][r + 1..] {
                for (k, n) in nodes.iter().enumerate() {
                    if n.state == St::Pending && self.member(k, alt) && !skipped.contains(&k) {
                        e.skip.push((
                            k,
                            format!(
                                "Not needed: flow {} succeeded, so its alternative {} did not run.",
                                self.flows[f].name, self.flows[alt].name
                            ),
                        ));
                    }
                }
            }
        }
        e
    }

    fn on_done_action(&mut self, i: usize, nodes: &[Node]) -> Effects {
        let mut e = Effects::default();
        let Some((g, rank)) = self.group_of[i] else {
            return e;
        };
        for &m in &self.groups[g][rank + 1..] {
            if nodes[m].state == St::Pending {
                e.skip.push((
                    m,
                    format!(
                        "Not needed: {} ({} alternative) {}.",
                        nodes[i].row.name,
                        if rank == 0 {
                            "the primary, not an"
                        } else {
                            "an"
                        },
                        if nodes[i].state == St::Skipped {
                            "was skipped"
                        } else {
                            "succeeded"
                        }
                    ),
                ));
            }
        }
        e
    }

    /// An action failed for good: the next alternative, else its flows'
    /// policies, innermost first, else the plan's.
    pub(super) fn on_failed(&mut self, i: usize, nodes: &[Node]) -> Failure {
        let mut e = Effects::default();
        if let Some((g, rank)) = self.group_of[i]
            && let Some(&next) = self.groups[g].get(rank + 1)
            && nodes[next].state == St::Pending
            && self.blocked(i).is_none()
        {
            self.dormant[next] = true;
            self.work.push_back(Work::Switch { from: i, to: next });
            return Failure::Contained(e);
        }
        let why = format!("action {} failed", nodes[i].row.name);
        for f in self.scopes_of(i) {
            if self.flows[f].state != FlowState::Pending || self.flows[f].cause.is_some() {
                // Already failed: its policy was applied once.
                return Failure::Contained(e);
            }
            self.flows[f].cause = Some(why.clone());
            self.work.push_back(Work::FlowFailed { flow: f, cause: i });
            // An alternative flow left: this one is stopped and rolled back
            // (its effects settled), then the alternative starts; the
            // failure goes no further.
            let next =
                self.flow_group_of[f].and_then(|(g, r)| self.flow_groups[g].get(r + 1).copied());
            if let Some(next) = next
                && !self.flow_started[next]
            {
                self.flows[f].stopped = true;
                self.flows[f].rollback_due = true;
                self.flow_switches.push((f, next));
                for (k, n) in nodes.iter().enumerate() {
                    if n.state == St::Pending && self.member(k, f) {
                        e.cancel.push((
                            k,
                            format!(
                                "Cancelled: its flow {} failed; its alternative {} takes its place.",
                                self.flows[f].name, self.flows[next].name
                            ),
                        ));
                    }
                }
                return Failure::Contained(e);
            }
            if self.flows[f].on_failure != OnFailure::Continue {
                self.flows[f].stopped = true;
                self.flows[f].rollback_due = self.flows[f].on_failure == OnFailure::Rollback;
                for (k, n) in nodes.iter().enumerate() {
                    if n.state == St::Pending && self.member(k, f) {
                        e.cancel.push((
                            k,
                            format!(
                                "Cancelled: its flow {} failed (on_failure: {}).",
                                self.flows[f].name,
                                self.flows[f].on_failure.as_str()
                            ),
                        ));
                    }
                }
            }
        }
        Failure::Escalated(e)
    }

    /// The flows whose rollback is due and can start now: none of their
    /// actions runs.
    pub(super) fn rollbacks_ready(&self, nodes: &[Node]) -> Vec<usize> {
        (0..self.flows.len())
            .filter(|&f| {
                self.flows[f].rollback_due
                    && !nodes
                        .iter()
                        .enumerate()
                        .any(|(k, n)| n.state == St::Running && self.member(k, f))
            })
            .collect()
    }

    /// The succeeded actions of flow `f` not yet reverted, latest first in
    /// `completed` (a topological order), then the others in reverse
    /// creation order (finished before this run: a resumed plan).
    pub(super) fn to_revert(&self, f: usize, nodes: &[Node], completed: &[usize]) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut seen = vec![false; nodes.len()];
        for &i in completed.iter().rev() {
            if !seen[i] && self.wants_revert(i, f, nodes) {
                seen[i] = true;
                out.push(i);
            }
        }
        for i in (0..nodes.len()).rev() {
            if !seen[i] && self.wants_revert(i, f, nodes) {
                out.push(i);
            }
        }
        out
    }

    fn wants_revert(&self, i: usize, f: usize, nodes: &[Node]) -> bool {
        nodes[i].state == St::Succeeded && !self.reverted[i] && self.member(i, f)
    }

    /// The flows that failed, for the plan's status message.
    pub(super) fn failed_summary(&self) -> Option<String> {
        let failed: Vec<String> = self
            .flows
            .iter()
            .filter(|f| f.cause.is_some() || f.state != FlowState::Pending)
            .map(|f| {
                let done = match (f.on_failure, f.state) {
                    (OnFailure::Rollback, FlowState::RolledBack) => "; rolled back",
                    (OnFailure::Rollback, _) => "; rollback not finished",
                    (OnFailure::Stop, _) => "; stopped",
                    _ => "",
                };
                format!(
                    "flow {} failed ({}){done}",
                    f.name,
                    f.cause.as_deref().unwrap_or("an action failed")
                )
            })
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    /// What a resumed run must redo: switches whose choice or settling was
    /// not committed, failures whose flow was not yet told, alternatives
    /// not needed any more.
    pub(super) fn resume(&mut self, nodes: &[Node]) -> Effects {
        let mut e = Effects::default();
        // Failed flows whose alternative flow was not started yet.
        for f in 0..self.flows.len() {
            if self.flows[f].state == FlowState::Pending {
                continue;
            }
            if let Some((g, r)) = self.flow_group_of[f]
                && let Some(&next) = self.flow_groups[g].get(r + 1)
                && !self.flow_started[next]
            {
                self.flow_switches.push((f, next));
            }
        }
        for members in self.groups.clone() {
            for (rank, &m) in members.iter().enumerate() {
                match nodes[m].state {
                    St::Succeeded | St::Skipped => {
                        let more = self.on_done(m, nodes);
                        e.skip.extend(more.skip);
                        break;
                    }
                    St::Failed => {
                        // A switch already committed is carried through
                        // (its failed action settled) even in a stopped
                        // flow, where the alternative is then cancelled.
                        if let Some(&next) = members.get(rank + 1)
                            && nodes[next].state == St::Pending
                            && self.dormant[next]
                            && (self.blocked(m).is_none() || self.started[next])
                        {
                            self.work.push_back(Work::Switch { from: m, to: next });
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        // A final failure whose flow was not told (the applier stopped
        // between the two commits).
        for (i, n) in nodes.iter().enumerate() {
            if n.state != St::Failed || self.superseded(i, nodes) {
                continue;
            }
            if let Some((g, rank)) = self.group_of[i]
                && self.groups[g].get(rank + 1).is_some()
            {
                continue;
            }
            let untold = self
                .scopes_of(i)
                .first()
                .is_some_and(|&f| self.flows[f].state == FlowState::Pending);
            if untold
                && let Failure::Escalated(more) | Failure::Contained(more) =
                    self.on_failed(i, nodes)
            {
                e.cancel.extend(more.cancel);
            }
        }
        // Stopped flows: what has not started never will.
        for (k, n) in nodes.iter().enumerate() {
            if n.state == St::Pending
                && let Some(msg) = self.blocked(k)
                && !e.cancel.iter().any(|(c, _)| *c == k)
            {
                e.cancel.push((k, msg));
            }
        }
        e
    }

    /// `to` may run now (its switch is committed and `from` settled).
    pub(super) fn switched(&mut self, from: usize, to: usize) {
        self.settled[from] = true;
        self.started[to] = true;
        self.dormant[to] = false;
    }

    /// Whether the choice to start `to` is already in the store.
    pub(super) fn started(&self, to: usize) -> bool {
        self.started[to]
    }

    /// Whether `from`'s failure was already settled in the store.
    pub(super) fn settled(&self, from: usize) -> bool {
        self.settled[from]
    }

    /// The alternative's rank and its primary's name.
    pub(super) fn rank_of(&self, i: usize, nodes: &[Node]) -> Option<(usize, String)> {
        self.group_of[i].map(|(g, r)| (r, nodes[self.groups[g][0]].row.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::sched::{Completion, Rule, Sched, Stop};

    fn node(name: &str, parents: Vec<usize>) -> Node {
        Node {
            row: test_row(name),
            parents,
            children: Vec::new(),
            state: St::Pending,
            execute_failed: false,
            pools: Vec::new(),
            priority: 0.0,
            refs: Vec::new(),
            dormant: false,
        }
    }

    fn scope(name: &str, flow: Option<&str>, primary: Option<(&str, u32)>) -> ScopeRow {
        ScopeRow {
            action_uuid: format!("u-{name}"),
            name: name.into(),
            flow: flow.map(String::from),
            primary: primary.map(|(p, r)| (p.to_string(), r)),
            started: primary.is_none_or(|(_, r)| r == 0),
            settled: false,
            reverted: false,
        }
    }

    fn flow(name: &str, on_failure: OnFailure) -> FlowRow {
        FlowRow {
            name: name.into(),
            parent: None,
            on_failure,
            state: FlowState::Pending,
            status_message: None,
            alternative_of: None,
            started: true,
        }
    }

    /// root -> m (alternatives m2, m3) -> z; x in flow g with rollback.
    fn sched() -> Sched {
        let mut nodes = vec![
            node("root", vec![]),
            node("m", vec![0]),
            node("m2", vec![0]),
            node("m3", vec![0]),
            node("z", vec![1]),
            node("x", vec![]),
            node("y", vec![5]),
        ];
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        let run = FlowRun::build(
            &mut nodes,
            vec![flow("g", OnFailure::Rollback)],
            vec![
                scope("m", None, Some(("m", 0))),
                scope("m2", None, Some(("m", 1))),
                scope("m3", None, Some(("m", 2))),
                scope("x", Some("g"), None),
                scope("y", Some("g"), None),
            ],
        )
        .expect("structured");
        let mut s = Sched::new(nodes, Vec::new(), Rule::Strict, 4);
        s.flows = Some(Box::new(run));
        s.settle_initial();
        s
    }

    fn done(index: usize, state: St) -> Completion {
        Completion {
            index,
            state,
            execute_failed: true,
            outputs: None,
        }
    }

    #[test]
    fn an_alternative_waits_for_its_switch_and_dependents_wait_for_the_group() {
        let mut s = sched();
        // z waits on every alternative: m's edge and two in memory.
        assert_eq!(s.nodes[4].parents, vec![1, 2, 3]);
        assert_eq!(s.pop_ready(), Some(0), "creation order");
        assert_eq!(s.pop_ready(), Some(5));
        assert_eq!(s.pop_ready(), None, "y waits for x");
        s.complete(done(0, St::Succeeded), |_| Stop::Continue);
        // m is ready; its alternatives are not.
        assert_eq!(s.pop_ready(), Some(1));
        assert_eq!(s.pop_ready(), None);
        s.complete(done(1, St::Failed), |_| Stop::Halt("plan policy".into()));
        assert!(s.stopping.is_none(), "an alternative contains the failure");
        let f = s.flows.as_mut().expect("flows");
        assert_eq!(f.work.pop_front(), Some(Work::Switch { from: 1, to: 2 }));
        f.switched(1, 2);
        s.release_alternative(2);
        assert_eq!(s.pop_ready(), Some(2));
        s.complete(done(2, St::Succeeded), |_| Stop::Continue);
        // m3 is not needed; z runs although m failed.
        assert_eq!(s.nodes[3].state, St::Skipped);
        assert_eq!(s.pop_ready(), Some(4));
        let skipped: Vec<ActionState> = s.to_commit.iter().map(|t| t.to).collect();
        assert_eq!(skipped, [ActionState::Skipped]);
        let f = s.flows.as_ref().expect("flows");
        assert!(f.superseded(1, &s.nodes));
    }

    #[test]
    fn a_failed_flow_stops_its_own_actions_only_and_is_rolled_back_when_idle() {
        let mut s = sched();
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.pop_ready(), Some(5));
        s.complete(done(5, St::Failed), |_| Stop::Continue);
        // y (in g) is cancelled by its flow; root goes on.
        assert_eq!(s.nodes[6].state, St::Cancelled);
        assert!(s.open());
        let f = s.flows.as_mut().expect("flows");
        assert_eq!(
            f.work.pop_front(),
            Some(Work::FlowFailed { flow: 0, cause: 5 })
        );
        assert!(f.flows[0].stopped && f.flows[0].rollback_due);
        assert_eq!(f.rollbacks_ready(&s.nodes), vec![0]);
        assert!(
            f.failed_summary()
                .is_some_and(|m| m.contains("flow g failed"))
        );
        // The last alternative failing escalates to the plan's policy.
        s.complete(done(0, St::Succeeded), |_| Stop::Continue);
        for (i, next) in [(1, 2), (2, 3)] {
            assert_eq!(s.pop_ready(), Some(i));
            s.complete(done(i, St::Failed), |_| Stop::Halt("plan".into()));
            let f = s.flows.as_mut().expect("flows");
            assert_eq!(f.work.pop_front(), Some(Work::Switch { from: i, to: next }));
            f.switched(i, next);
            s.release_alternative(next);
        }
        assert_eq!(s.pop_ready(), Some(3));
        s.complete(done(3, St::Failed), |_| Stop::Halt("plan".into()));
        assert_eq!(s.stopping.as_deref(), Some("plan"));
        assert_eq!(
            s.nodes[4].state,
            St::Cancelled,
            "z: every alternative failed"
        );
    }

    #[test]
    fn an_alternative_flow_starts_after_the_failed_flow_is_rolled_back_and_its_dependents_follow_it()
     {
        // a (flow f) -> d; b (flow g, the alternative of f).
        let mut nodes = vec![node("a", vec![]), node("b", vec![]), node("d", vec![0])];
        nodes[0].children.push(2);
        let mut g = flow("g", OnFailure::Continue);
        g.alternative_of = Some(("f".into(), 1));
        g.started = false;
        let run = FlowRun::build(
            &mut nodes,
            vec![flow("f", OnFailure::Continue), g],
            vec![scope("a", Some("f"), None), scope("b", Some("g"), None)],
        )
        .expect("structured");
        assert_eq!(nodes[2].parents, vec![0, 1], "d waits for g's last action");
        let mut s = Sched::new(nodes, Vec::new(), Rule::Strict, 4);
        s.flows = Some(Box::new(run));
        s.settle_initial();
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.pop_ready(), None, "b waits for its flow to start");
        s.complete(done(0, St::Failed), |_| Stop::Halt("plan".into()));
        assert!(s.stopping.is_none(), "the alternative flow contains it");
        let f = s.flows.as_mut().expect("flows");
        assert_eq!(
            f.work.pop_front(),
            Some(Work::FlowFailed { flow: 0, cause: 0 })
        );
        // The rollback comes first.
        assert_eq!(f.rollbacks_ready(&s.nodes), vec![0]);
        assert_eq!(f.flow_switch_ready(), None);
        f.flows[0].rollback_due = false;
        assert_eq!(f.flow_switch_ready(), Some((0, 1)));
        let members = f.flow_switched(0, 1, &s.nodes);
        assert_eq!(members, vec![1]);
        for i in members {
            s.release_alternative(i);
        }
        assert_eq!(s.pop_ready(), Some(1));
        s.complete(done(1, St::Succeeded), |_| Stop::Continue);
        assert_eq!(s.pop_ready(), Some(2), "d runs: g replaced f");
    }

    #[test]
    fn a_resumed_switch_is_settled_even_when_its_flow_was_stopped_meanwhile() {
        // m failed, its switch to m2 was committed (m2 started) but m was
        // not settled, and flow g failed (rollback) before the applier died.
        let mut nodes = vec![node("m", vec![]), node("m2", vec![]), node("x", vec![])];
        nodes[0].state = St::Failed;
        nodes[2].state = St::Failed;
        let mut g = flow("g", OnFailure::Rollback);
        g.state = FlowState::Failed;
        g.status_message = Some("action x failed".into());
        let mut m2 = scope("m2", Some("g"), Some(("m", 1)));
        m2.started = true;
        let run = FlowRun::build(
            &mut nodes,
            vec![g],
            vec![
                scope("m", Some("g"), Some(("m", 0))),
                m2,
                scope("x", Some("g"), None),
            ],
        )
        .expect("structured");
        let mut s = Sched::new(nodes, Vec::new(), Rule::Strict, 4);
        s.flows = Some(Box::new(run));
        s.settle_initial();
        let f = s.flows.as_mut().expect("flows");
        assert_eq!(f.work.pop_front(), Some(Work::Switch { from: 0, to: 1 }));
        assert_eq!(s.nodes[1].state, St::Cancelled, "its flow is stopped");
        assert_eq!(s.pop_ready(), None);
    }

    /// A random plan: `n` primaries with edges from lower to higher
    /// indexes, some with alternatives (each alternative an extra node with
    /// its primary's parents, as the import makes them), some in one of
    /// two flows.
    fn random_plan(
        n: usize,
        edges: &[(usize, usize)],
        alts: &[usize],
        flows_of: &[Option<usize>],
    ) -> (Vec<Node>, Vec<FlowRow>, Vec<ScopeRow>) {
        let mut nodes: Vec<Node> = (0..n).map(|i| node(&format!("p{i}"), Vec::new())).collect();
        for &(a, b) in edges {
            let (a, b) = (a % n, b % n);
            if a < b && !nodes[b].parents.contains(&a) {
                nodes[b].parents.push(a);
            }
        }
        let mut scopes = Vec::new();
        let flow_name = |i: usize| flows_of.get(i).copied().flatten().map(|f| format!("f{f}"));
        for i in 0..n {
            let k = alts.get(i).copied().unwrap_or(0) % 3;
            if k > 0 {
                scopes.push(scope(&format!("p{i}"), None, Some((&format!("p{i}"), 0))));
            }
            for r in 1..=k {
                let name = format!("p{i}-alt{r}");
                let parents = nodes[i].parents.clone();
                nodes.push(node(&name, parents));
                scopes.push(scope(&name, None, Some((&format!("p{i}"), r as u32))));
            }
        }
        for s in &mut scopes {
            let primary = s.primary.as_ref().map(|p| p.0.clone()).unwrap_or_default();
            let i: usize = primary[1..].parse().unwrap_or(0);
            s.flow = flow_name(i);
        }
        for i in 0..n {
            if flow_name(i).is_some() && !scopes.iter().any(|s| s.name == format!("p{i}")) {
                scopes.push(scope(&format!("p{i}"), flow_name(i).as_deref(), None));
            }
        }
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        let flows = vec![
            flow("f0", OnFailure::Rollback),
            flow("f1", OnFailure::Continue),
        ];
        (nodes, flows, scopes)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever the plan and whatever fails: the graph with the
        /// alternatives' edges is acyclic, every action ends in a final
        /// state, none runs twice, an alternative runs only after the one
        /// before it failed, and an action runs only if each of its
        /// parents' groups succeeded.
        #[test]
        fn alternatives_and_flows_keep_the_plan_acyclic_and_every_action_settles_once(
            n in 1usize..12,
            edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
            alts in proptest::collection::vec(0usize..3, 12),
            flows_of in proptest::collection::vec(proptest::option::of(0usize..2), 12),
            fails in proptest::collection::vec(proptest::bool::ANY, 40),
        ) {
            let (mut nodes, flows, scopes) = random_plan(n, &edges, &alts, &flows_of);
            let run = FlowRun::build(&mut nodes, flows, scopes);
            // Acyclic (Kahn) with the in-memory edges.
            let mut waiting: Vec<usize> = nodes.iter().map(|x| x.parents.len()).collect();
            let mut stack: Vec<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
            let mut seen = 0;
            while let Some(i) = stack.pop() {
                seen += 1;
                for &c in &nodes[i].children {
                    waiting[c] -= 1;
                    if waiting[c] == 0 {
                        stack.push(c);
                    }
                }
            }
            proptest::prop_assert_eq!(seen, nodes.len());
            let count = nodes.len();
            let mut s = Sched::new(nodes, Vec::new(), Rule::Strict, 64);
            s.flows = run.map(Box::new);
            s.settle_initial();
            let mut ran = vec![0usize; count];
            let mut steps = 0;
            loop {
                steps += 1;
                proptest::prop_assert!(steps < 1000);
                // The engine's work: switches.
                let work = s.flows.as_mut().and_then(|f| f.work.pop_front());
                if let Some(w) = work {
                    if let Work::Switch { from, to } = w {
                        proptest::prop_assert_eq!(s.nodes[from].state, St::Failed);
                        let f = s.flows.as_mut().expect("flows");
                        f.switched(from, to);
                        s.release_alternative(to);
                    }
                    continue;
                }
                let Some(i) = s.pop_ready() else { break };
                // Its parents' groups all succeeded.
                for &p in &s.nodes[i].parents {
                    let ok = matches!(s.nodes[p].state, St::Succeeded | St::Skipped)
                        || (s.nodes[p].state == St::Failed
                            && s.flows.as_ref().is_some_and(|f| f.superseded(p, &s.nodes)));
                    proptest::prop_assert!(ok, "{} ran after parent {} {:?}", i, p, s.nodes[p].state);
                }
                ran[i] += 1;
                let state = if fails[steps % fails.len()] { St::Failed } else { St::Succeeded };
                s.complete(done(i, state), |_| Stop::Continue);
            }
            proptest::prop_assert!(ran.iter().all(|&r| r <= 1));
            for (i, x) in s.nodes.iter().enumerate() {
                proptest::prop_assert!(
                    !matches!(x.state, St::Pending | St::Running),
                    "{} left {:?}", x.row.name, x.state
                );
                if x.state == St::Succeeded || x.state == St::Failed {
                    proptest::prop_assert_eq!(ran[i], 1);
                }
            }
        }
    }
}
