//! Versioned schema migrations, applied at open. Each migration runs in its
//! own transaction together with the `user_version` bump, so a crash leaves
//! the database at the previous version or the next, never between.
//!
//! Never edit a released migration: append a new one.

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: Watcher's tables (reference section 6.4), with soft delete, plus
    // the event log.
    r#"
CREATE TABLE goals (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_names TEXT NOT NULL DEFAULT '{}',
    efficacy_specification TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX goals_name ON goals(name, deleted);

CREATE TABLE strategies (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_names TEXT NOT NULL DEFAULT '{}',
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    parameters_spec TEXT NOT NULL DEFAULT '{}',
    version TEXT NOT NULL DEFAULT '',
    plugin_file TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX strategies_name ON strategies(name, deleted);

CREATE TABLE audit_templates (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    strategy_id INTEGER REFERENCES strategies(id),
    scope TEXT NOT NULL DEFAULT '[]',
    default_parameters TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audits (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    audit_type TEXT NOT NULL,
    state TEXT NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    interval TEXT,
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    strategy_id INTEGER REFERENCES strategies(id),
    audit_template_id INTEGER REFERENCES audit_templates(id),
    scope TEXT NOT NULL DEFAULT '[]',
    auto_trigger INTEGER NOT NULL DEFAULT 0,
    next_run_time TEXT,
    hostname TEXT,
    start_time TEXT,
    end_time TEXT,
    force INTEGER NOT NULL DEFAULT 0,
    policy TEXT,
    status_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE action_plans (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    audit_id INTEGER REFERENCES audits(id),
    strategy_id INTEGER REFERENCES strategies(id),
    state TEXT NOT NULL,
    global_efficacy TEXT NOT NULL DEFAULT '[]',
    planner TEXT,
    policy TEXT,
    hostname TEXT,
    status_message TEXT,
    lease_owner TEXT,
    lease_expires_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    name TEXT NOT NULL,
    action_type TEXT NOT NULL,
    action_type_version TEXT NOT NULL DEFAULT '',
    input_parameters TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    outputs TEXT,
    status_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (action_plan_id, name)
);
CREATE INDEX actions_plan ON actions(action_plan_id);

CREATE TABLE efficacy_indicators (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    unit TEXT,
    value REAL,
    created_at TEXT NOT NULL,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE action_descriptions (
    id INTEGER PRIMARY KEY,
    action_type TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event_type TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_uuid TEXT NOT NULL,
    action_plan_uuid TEXT,
    old_state TEXT,
    new_state TEXT,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_plan ON events(action_plan_uuid, id);
"#,
    // 2: what an audit found: the instantiated actions and the efficacy
    // indicators of its solution (kept until the planners turn it into a plan).
    r#"
ALTER TABLE audits ADD COLUMN solution TEXT;
ALTER TABLE audits ADD COLUMN efficacy_indicators TEXT NOT NULL DEFAULT '[]';
"#,
    // 3: the planner a strategy's solutions are scheduled with.
    r#"
ALTER TABLE strategies ADD COLUMN planner TEXT NOT NULL DEFAULT 'weight';
"#,
    // 4: the UNIQUE (action_plan_id, name) index already serves lookups by
    // plan; a second index on action_plan_id only slowed plan inserts.
    r#"
DROP INDEX actions_plan;
"#,
    // 5: no UNIQUE (action_plan_id, name). Nothing looks an action up by
    // name, and keeping that index cost a plan of 100,000 actions about a
    // third of its insert time: solution ids are in no order, so every row
    // went to a random place in it. Names stay unique within a plan: the
    // store checks them before it inserts (plans::insert_plan). A plan's
    // actions are found through `actions_plan`, which is (action_plan_id,
    // id) and so is written in order and read in creation order.
    // SQLite cannot drop a table constraint: the table is rebuilt, its rows
    // kept with their ids. Nothing references `actions`.
    r#"
CREATE TABLE actions_v5 (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    name TEXT NOT NULL,
    action_type TEXT NOT NULL,
    action_type_version TEXT NOT NULL DEFAULT '',
    input_parameters TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    outputs TEXT,
    status_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
INSERT INTO actions_v5 (id, uuid, action_plan_id, name, action_type, action_type_version,
    input_parameters, state, parents, outputs, status_message, created_at, updated_at,
    deleted_at, deleted)
SELECT id, uuid, action_plan_id, name, action_type, action_type_version,
    input_parameters, state, parents, outputs, status_message, created_at, updated_at,
    deleted_at, deleted FROM actions;
DROP TABLE actions;
ALTER TABLE actions_v5 RENAME TO actions;
CREATE INDEX actions_plan ON actions(action_plan_id);
"#,
    // 6: an action's parents are stored as their row ids (`[12,13]`), not
    // their uuids: a fifth of the text. A plan whose actions wait on many
    // others (Watcher's node_resource_consolidation makes every migration
    // wait for every disable: 100 parents each at 10,000 actions) no longer
    // writes 4 KB of uuids a row. The store maps ids back to uuids when it
    // reads actions (plans::resolve_parents).
    r#"
UPDATE actions SET parents = (
    SELECT json_group_array(p.id ORDER BY j.key)
    FROM json_each(actions.parents) j JOIN actions p ON p.uuid = j.value
) WHERE parents <> '[]';
"#,
    // 7: the content of an audit's policy (the validated policy as JSON),
    // stored when the audit is created: every later run of the audit (a
    // CONTINUOUS one in `serve`, an EVENT trigger) plans with the policy the
    // operator chose, whatever the current directory or the file becomes.
    // `policy` keeps the reference as given (a name, or an absolute path).
    r#"
ALTER TABLE audits ADD COLUMN policy_content TEXT;
"#,
    // 8: an audit template may carry a policy, as an audit does (the
    // reference as given, and the validated content): audits made from the
    // template without a policy of their own take it.
    r#"
ALTER TABLE audit_templates ADD COLUMN policy TEXT;
ALTER TABLE audit_templates ADD COLUMN policy_content TEXT;
"#,
    // 9: whether an action's FAILED state came from its `execute` (what
    // Watcher's ANY rule runs the next action after), stored with the
    // state instead of read back out of its status message on resume.
    // Existing rows take it from the message, once.
    r#"
ALTER TABLE actions ADD COLUMN execute_failed INTEGER NOT NULL DEFAULT 0;
UPDATE actions SET execute_failed = 1
    WHERE state = 'FAILED' AND status_message LIKE 'Action failed in execute%';
"#,
    // 10: flows and alternatives (docs/flows.md). `plan_flows`: a plan's
    // named flows, each with its enclosing flow, its failure policy, the
    // flow it is an alternative of (with its rank, and whether it was
    // started) and its state. `plan_action_scopes`: for each action of a plan that has flows
    // or alternatives, its innermost flow, the primary it is an alternative
    // of (rank 0: the primary itself) and the choices made about it
    // (started, settled after its failure, reverted by its flow's
    // rollback). A flat plan has no row in either.
    r#"
CREATE TABLE plan_flows (
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    name TEXT NOT NULL,
    parent TEXT,
    on_failure TEXT NOT NULL,
    alternative_of TEXT,
    rank INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'PENDING',
    status_message TEXT,
    updated_at TEXT,
    PRIMARY KEY (action_plan_id, name)
) WITHOUT ROWID;
CREATE TABLE plan_action_scopes (
    action_id INTEGER PRIMARY KEY REFERENCES actions(id),
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    flow TEXT,
    primary_name TEXT,
    rank INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 1,
    settled INTEGER NOT NULL DEFAULT 0,
    reverted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX plan_action_scopes_plan ON plan_action_scopes(action_plan_id);
"#,
    // 11: the events table is the notification outbox (store::outbox). Each
    // delivering sink (a webhook, an AMQP bus) keeps a durable cursor: the
    // last event it has delivered. `notification_origin` is this database's
    // own random id: with an event's id it makes the event's stable message
    // id, the same on every redelivery and unlike any other database's.
    r#"
CREATE TABLE notification_cursors (
    sink TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE notification_origin (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL
);
INSERT INTO notification_origin (id, origin) VALUES (1, lower(hex(randomblob(8))));
"#,
    // 12: several hosts on one database (docs/fleet.md). `services`:
    // Watcher's table, one row per (host, role) that `serve` runs, its
    // heartbeat `last_seen_up` on the database's clock (ACTIVE or FAILED is
    // worked out on read) and what it last said about itself
    // (`status_message`: why it stopped claiming work). `audit_ticks`: one
    // row per run of a CONTINUOUS audit (its due time) or trigger of an
    // EVENT audit, inserted under the primary key by the one host that runs
    // it.
    r#"
CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    last_seen_up TEXT NOT NULL,
    status_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (host, name)
);
CREATE TABLE audit_ticks (
    audit_uuid TEXT NOT NULL,
    tick TEXT NOT NULL,
    host TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (audit_uuid, tick)
) WITHOUT ROWID;
CREATE INDEX action_plans_state ON action_plans(state, deleted);
"#,
    // 13: audit runs asked of the decision engine by a host that does not
    // run it (`serve --roles applier` with the API): one row per request,
    // taken by a host of the `decision` role (`taken_by`, `taken_at` on
    // the database's clock; a taking older than the stale time is taken
    // over) and deleted once handled. `kind` is `run` (a ONESHOT audit) or
    // `trigger` (an EVENT audit).
    r#"
CREATE TABLE audit_requests (
    id INTEGER PRIMARY KEY,
    audit_uuid TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run', 'trigger')),
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    taken_by TEXT,
    taken_at TEXT
);
"#,
    // 14: the Alertmanager receiver's dedupe, fleet-wide and durable
    // (api/alertmanager.rs, FleetStore::admit_alert_run): one row per firing
    // alert (its group, fingerprint and start) that triggered an EVENT
    // audit, inserted under the primary key by the one host that runs it;
    // a row older than the receiver's window no longer holds a resend back.
    r#"
CREATE TABLE alert_runs (
    audit_uuid TEXT NOT NULL,
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    host TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (audit_uuid, group_key, fingerprint, starts_at)
) WITHOUT ROWID;
"#,
    // 15: PostgreSQL only (pg_schema.rs): free space in the pages of
    // `actions` for the applier's in-place updates. SQLite has no such
    // setting: nothing to do.
    r#"
-- nothing to do on SQLite
"#,
    // 16: PostgreSQL only (pg_schema.rs): the applier's group commit as
    // one server-side function call. SQLite runs in process: a statement
    // costs no round trip, nothing to do.
    r#"
-- nothing to do on SQLite
"#,
    // 17: PostgreSQL only (pg_schema.rs): a plan's event ids in commit
    // order. SQLite has one writer at a time and hands out an event's id
    // inside its write transaction: its ids are in commit order already.
    r#"
-- nothing to do on SQLite
"#,
    // 18: PostgreSQL only (pg_schema.rs): the group commit's larger
    // batches as set operations. Nothing to do on SQLite.
    r#"
-- nothing to do on SQLite
"#,
    // 19: PostgreSQL only (pg_schema.rs): the group commit's function
    // fences each applier's transition by its plan's lease. On SQLite the
    // store checks the lease in Rust, in the transition's own write
    // transaction (store/apply.rs): nothing to do.
    r#"
-- nothing to do on SQLite
"#,
];
