//! The plugin boundary's contract, through the host library against the
//! built `.so` files: distinct modules, panics, concurrency, abort, and every
//! capability table.

use serde_json::json;
use sextant::plugins::{DirSource, Library, PluginCallError, PluginRegistry, SearchPath};
use sextant_e2e::*;
use sextant_plugin_api::sdk::Action;
use sextant_plugin_api::{ErrorKind, Kind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A registry over one fresh directory holding the core and kinds plugins.
fn registry() -> (Scratch, PluginRegistry) {
    let home = scratch();
    let dir = home.path().join("plugins");
    populate(&dir, &[&core_plugin(), &fixture("libfixture_kinds.so")]);
    let reg = PluginRegistry::discover(&SearchPath {
        dirs: vec![(dir, DirSource::Flag)],
    });
    assert!(reg.rejected.is_empty(), "{:?}", reg.rejected);
    (home, reg)
}

#[test]
fn two_plugins_of_one_interface_load_as_two_distinct_modules() {
    let core = Library::open(&core_plugin()).expect("core loads");
    let kinds = Library::open(&fixture("libfixture_kinds.so")).expect("kinds loads");
    // Library::load also checks that the module's own manifest() equals its
    // section, which RootModule::load_from_file would break for the second.
    let core_names: Vec<_> = core
        .manifest
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let kinds_names: Vec<_> = kinds
        .manifest
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(core_names, ["nop", "sleep", "command", "http", "default"]);
    assert!(kinds_names.contains(&"fixture.boom".to_string()));

    let (_home, reg) = registry();
    let nop = reg
        .handler("nop", &json!({"message": "hi"}), &json!({}))
        .expect("nop");
    let echo = reg
        .handler("fixture.echo", &json!({"x": 1}), &json!({"name": "a1"}))
        .expect("echo");
    assert_eq!(nop.execute().expect("nop runs"), json!({"message": "hi"}));
    assert_eq!(
        echo.execute().expect("echo runs"),
        json!({"params": {"x": 1}, "context": {"name": "a1"}})
    );
    assert!(!Arc::ptr_eq(nop.library(), echo.library()));
}

#[test]
fn a_panicking_handler_returns_panicked_and_the_next_call_to_another_handler_succeeds() {
    let (_home, reg) = registry();
    let boom = reg
        .handler("fixture.boom", &json!({}), &json!({}))
        .expect("create");
    let err = boom.execute().expect_err("boom panics");
    assert_eq!(err.kind(), Some(ErrorKind::PANICKED), "{err}");
    assert!(err.to_string().contains("boom on purpose"), "{err}");
    assert!(boom.is_poisoned());
    // The poisoned handler is not entered again.
    assert!(matches!(
        boom.execute(),
        Err(PluginCallError::Poisoned { .. })
    ));

    // Another handler, of the same library and of another one, still works.
    let echo = reg
        .handler("fixture.echo", &json!({}), &json!({}))
        .expect("echo");
    assert!(echo.execute().is_ok());
    let nop = reg
        .handler("nop", &json!({"message": null}), &json!({}))
        .expect("nop");
    assert!(nop.execute().is_ok());

    // After QUARANTINE_AFTER panics the library creates no more handlers.
    for _ in 1..sextant::plugins::QUARANTINE_AFTER {
        let b = reg
            .handler("fixture.boom", &json!({}), &json!({}))
            .expect("create");
        assert_eq!(
            b.execute().expect_err("panics").kind(),
            Some(ErrorKind::PANICKED)
        );
    }
    assert!(matches!(
        reg.handler("fixture.echo", &json!({}), &json!({})),
        Err(PluginCallError::Quarantined { .. })
    ));
    // Other libraries are unaffected.
    assert!(
        reg.handler("nop", &json!({"message": null}), &json!({}))
            .is_ok()
    );
}

#[test]
fn sixty_four_concurrent_tasks_call_handlers_through_spawn_blocking() {
    let (_home, reg) = registry();
    let reg = Arc::new(reg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..64 {
            let reg = reg.clone();
            tasks.push(tokio::spawn(async move {
                let (name, params) = if i % 2 == 0 {
                    ("sleep", json!({"duration": 0.05}))
                } else {
                    ("fixture.echo", json!({"i": i, "wait": 0.05}))
                };
                let h = Arc::new(reg.handler(name, &params, &json!({})).expect("create"));
                h.blocking(|h| h.pre_condition()).await?;
                let out = h.blocking(|h| h.execute()).await?;
                h.blocking(|h| h.post_condition()).await?;
                Ok::<_, PluginCallError>((i, out))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    assert_eq!(results.len(), 64);
    for r in results {
        let (i, out) = r.expect("every call succeeds");
        if i % 2 == 1 {
            assert_eq!(out["params"]["i"], i);
        } else {
            assert_eq!(out["slept"], 0.05);
        }
    }
}

#[test]
fn abort_from_another_task_stops_a_running_sleep_within_100_ms() {
    let (_home, reg) = registry();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let h = Arc::new(
        reg.handler("sleep", &json!({"duration": 30.0}), &json!({}))
            .expect("create"),
    );
    let (err, stopped_after) = rt.block_on(async {
        let running = {
            let h = h.clone();
            tokio::spawn(async move { h.blocking(|h| h.execute()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let aborter = h.clone();
        let t = tokio::spawn(async move {
            let at = Instant::now();
            aborter.abort().expect("abort accepted");
            at
        })
        .await
        .expect("abort task");
        let r = running.await.expect("join");
        (r.expect_err("aborted"), t.elapsed())
    });
    assert_eq!(err.kind(), Some(ErrorKind::ABORTED), "{err}");
    assert!(
        stopped_after < Duration::from_millis(100),
        "sleep stopped {stopped_after:?} after abort"
    );
}

#[test]
fn sleep_honours_fractional_seconds_and_nop_follows_watcher() {
    let (_home, reg) = registry();
    let h = reg
        .handler("sleep", &json!({"duration": 0.3}), &json!({}))
        .expect("create");
    let t = Instant::now();
    h.execute().expect("sleeps");
    let took = t.elapsed();
    // Watcher's int(0.3) would not sleep at all.
    assert!(took >= Duration::from_millis(300), "{took:?}");

    let nop = |p| reg.handler("nop", &p, &json!({})).expect("create");
    let skip = nop(json!({"message": "m", "skip_pre_condition": true}));
    assert_eq!(
        skip.pre_condition().expect_err("skips").kind(),
        Some(ErrorKind::SKIPPED)
    );
    let fail = nop(json!({"message": "m", "fail_pre_condition": true}));
    assert_eq!(
        fail.pre_condition().expect_err("fails").kind(),
        Some(ErrorKind::PRECONDITION_FAILED)
    );
    let fail = nop(json!({"message": "m", "fail_execute": true}));
    assert_eq!(
        fail.execute().expect_err("fails").kind(),
        Some(ErrorKind::EXECUTION_FAILED)
    );
    let fail = nop(json!({"message": "m", "fail_post_condition": true}));
    assert!(fail.execute().is_ok());
    assert!(fail.post_condition().is_err());
    assert!(nop(json!({"message": "m"})).revert().is_ok());
    let bad = reg.handler("nop", &json!({"message": 1, "bogus": true}), &json!({}));
    assert_eq!(
        bad.expect_err("refused").kind(),
        Some(ErrorKind::INVALID_INPUT)
    );
}

#[test]
fn every_capability_table_crosses_the_boundary() {
    let (_home, reg) = registry();
    let model = reg
        .collect("fixture_two_nodes", &json!({}))
        .expect("collect");
    assert_eq!(model["nodes"][0]["hostname"], "n1");

    let sol = reg
        .run_strategy(
            "fixture_evacuate",
            &model,
            &json!({"migration_type": "live"}),
        )
        .expect("strategy");
    assert_eq!(sol.actions.len(), 1);
    assert_eq!(sol.actions[0].resource_id.as_deref(), Some("i1"));
    assert_eq!(sol.actions[0].input_parameters["destination_node"], "n2");
    assert_eq!(sol.efficacy_indicators["migrations"], 1);

    let actions: Vec<Action> = (0..3)
        .map(|i| Action {
            id: format!("a{i}"),
            action_type: "nop".into(),
            resource_id: None,
            input_parameters: json!({"message": i}),
        })
        .collect();
    let s = reg
        .schedule("fixture_chain", &actions, &json!({}))
        .expect("planner");
    assert_eq!(s.order, vec![0, 1, 2]);
    assert_eq!(s.edges, vec![(0, 1), (1, 2)]);

    let mapped = reg
        .map_action("fixture_prefixer", &json!({"action_type": "migrate"}))
        .expect("mapper");
    assert_eq!(mapped, "fixture.migrate");
    let err = reg
        .map_action("fixture_prefixer", &json!({}))
        .expect_err("refused");
    assert_eq!(err.kind(), Some(ErrorKind::INVALID_INPUT));

    assert!(reg.find(Kind::Strategy, "fixture_evacuate").is_some());
    assert!(
        reg.schedule("no_such_planner", &actions, &json!({}))
            .is_err()
    );
}

/// `planners.v2`: a structured planner's flows and alternatives cross the
/// boundary typed; the same planner in a plugin built before v2 existed
/// (only `planners.v1` offered) is reached through v1 and plans flat, with
/// the same DAG; a planner that is not structured answers v2 with its flat
/// schedule.
#[test]
fn planners_v2_carries_flows_and_alternatives_and_v1_only_plugins_plan_flat() {
    use sextant_plugin_api::sdk::FlowOnFailure;
    let home = scratch();
    let dir = home.path().join("plugins");
    populate(
        &dir,
        &[
            &fixture("libfixture_kinds.so"),
            &fixture("libfixture_planners_v1.so"),
        ],
    );
    let reg = PluginRegistry::discover(&SearchPath {
        dirs: vec![(dir, DirSource::Flag)],
    });
    assert!(reg.rejected.is_empty(), "{:?}", reg.rejected);
    let specs: Vec<_> = (0..3)
        .map(|i| sextant::plan::spec(&format!("a{i}"), "nop", None, &json!({"message": i})))
        .collect();
    assert!(reg.planner_offers_v2("fixture_fallback"));
    let s = reg
        .schedule_structured("fixture_fallback", &specs, "{}")
        .expect("v2");
    assert_eq!(s.schedule.order, vec![0, 1, 2]);
    assert_eq!(s.alternatives.len(), 3);
    assert_eq!(s.alternatives[1].primary, 1);
    assert_eq!(s.alternatives[1].action.id, "a1-alt");
    assert_eq!(
        s.alternatives[1].action.input_parameters,
        json!({"message": "alt"})
    );
    assert_eq!(s.flows.len(), 1);
    assert_eq!(s.flows[0].name, "all");
    assert_eq!(s.flows[0].on_failure, FlowOnFailure::Stop);
    assert_eq!(s.flows[0].actions, vec![0, 1, 2]);
    // Built before v2: the host falls back to v1, a flat plan.
    assert!(!reg.planner_offers_v2("fixture_fallback_v1"));
    let flat = reg
        .schedule_structured("fixture_fallback_v1", &specs, "{}")
        .expect("v1");
    assert_eq!(flat.schedule.order, s.schedule.order);
    assert_eq!(flat.schedule.edges, s.schedule.edges);
    assert!(flat.alternatives.is_empty() && flat.flows.is_empty());
    // A plain planner answers v2 with what v1 gives.
    let chain = reg
        .schedule_structured("fixture_chain", &specs, "{}")
        .expect("chain");
    assert_eq!(chain.schedule.edges, vec![(0, 1), (1, 2)]);
    assert!(chain.alternatives.is_empty() && chain.flows.is_empty());
    // And the whole planning path stores the structure as an import would.
    let planned = sextant::plan::plan(
        &reg,
        "fixture_fallback",
        &json!({}),
        &Default::default(),
        &Default::default(),
        &specs,
    )
    .expect("planned");
    let mut specs = specs;
    let mut planned = planned;
    let structure = std::mem::take(&mut planned.structure).apply(&mut planned, &mut specs);
    let names: Vec<&str> = planned
        .order
        .iter()
        .map(|&i| specs[i].id.as_str())
        .collect();
    assert_eq!(names, ["a0", "a0-alt", "a1", "a1-alt", "a2", "a2-alt"]);
    assert_eq!(structure.scopes.len(), 6);
    assert!(
        structure
            .scopes
            .iter()
            .all(|s| s.flow.as_deref() == Some("all"))
    );
}
