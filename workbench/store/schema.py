"""The trace store's SQL schema: base tables, the documented views, and migrations.

Users query the views (``runs``, ``steps``, ``llm_calls``, ``interrupts``, ``state_changes``,
``supersteps``, ``events``) and the ``state_at(run_id, step)`` table macro; the ``wb_*`` base
tables behind them may change between versions, the views keep their columns (docs/sql.md).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = """
CREATE TABLE IF NOT EXISTS wb_meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS wb_runs (
    run_id VARCHAR PRIMARY KEY,
    graph VARCHAR NOT NULL,
    graph_file VARCHAR,
    code_version VARCHAR,
    node_versions JSON,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    parent_run_id VARCHAR,
    fork_step INTEGER,
    input JSON,
    output JSON,
    error VARCHAR,
    config JSON,
    last_step INTEGER
);

CREATE TABLE IF NOT EXISTS wb_tasks (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    task INTEGER NOT NULL,
    node VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    duration_ms DOUBLE,
    "update" JSON,
    error VARCHAR,
    traceback VARCHAR,
    arg JSON
);

CREATE TABLE IF NOT EXISTS wb_changes (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    key VARCHAR NOT NULL,
    op VARCHAR NOT NULL,
    value JSON
);

CREATE TABLE IF NOT EXISTS wb_supersteps (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    tasks JSON NOT NULL,
    joins JSON,
    created_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS wb_llm_calls (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    task INTEGER NOT NULL,
    node VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    model VARCHAR,
    messages JSON,
    params JSON,
    response JSON,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd DOUBLE,
    latency_ms DOUBLE,
    attempts INTEGER,
    error VARCHAR,
    fingerprint VARCHAR,
    created_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS wb_interrupts (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    task INTEGER NOT NULL,
    node VARCHAR NOT NULL,
    idx INTEGER NOT NULL,
    payload JSON,
    response JSON,
    created_at TIMESTAMP,
    resumed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS wb_events (
    run_id VARCHAR NOT NULL,
    step INTEGER,
    kind VARCHAR NOT NULL,
    node VARCHAR,
    detail JSON,
    created_at TIMESTAMP
);
"""

VIEWS = """
CREATE OR REPLACE VIEW runs AS
SELECT run_id, graph, status, started_at, ended_at, parent_run_id, fork_step, input, output, error,
       graph_file, code_version, last_step
FROM wb_runs;

CREATE OR REPLACE VIEW steps AS
SELECT run_id, step, node, attempt, status, started_at, ended_at, duration_ms, "update", error,
       task, traceback, arg
FROM wb_tasks;

CREATE OR REPLACE VIEW llm_calls AS
SELECT run_id, step, node, model, messages, response, prompt_tokens, completion_tokens, cost_usd,
       latency_ms, error, task, seq, attempt, kind, params, attempts, fingerprint, created_at
FROM wb_llm_calls;

CREATE OR REPLACE VIEW interrupts AS
SELECT run_id, step, node, payload, response, created_at, resumed_at, task, idx
FROM wb_interrupts;

CREATE OR REPLACE VIEW state_changes AS
SELECT run_id, step, key, op, value FROM wb_changes;

CREATE OR REPLACE VIEW supersteps AS
SELECT run_id, step, tasks, created_at FROM wb_supersteps;

CREATE OR REPLACE VIEW events AS
SELECT run_id, step, kind, node, detail, created_at FROM wb_events;

-- The full state of a run after a step, rebuilt from the stored changes: for each key, the
-- last whole value written at or before the step, followed by every item appended since.
CREATE OR REPLACE MACRO state_at(rid, s) AS TABLE
WITH ch AS (
    SELECT key, op, value, step FROM wb_changes WHERE run_id = rid AND step <= s
), last_set AS (
    SELECT key, max(step) AS set_step FROM ch WHERE op = 'set' GROUP BY key
), parts AS (
    SELECT ch.key, ch.op, ch.value, ch.step
    FROM ch LEFT JOIN last_set USING (key)
    WHERE ch.step >= coalesce(last_set.set_step, -1)
), folded AS (
    SELECT key,
           CASE WHEN count(*) FILTER (WHERE op = 'extend') = 0
                THEN any_value(value) FILTER (WHERE op = 'set')
                ELSE to_json(flatten(list(json_extract(value, '$[*]') ORDER BY step)))
           END AS value
    FROM parts GROUP BY key
)
SELECT rid AS run_id, s AS step, json_group_object(key, value) AS state FROM folded;
"""

# Each entry upgrades a database from version N (its index + 1) to N + 1. Empty for now: the
# first released schema is version 1.
MIGRATIONS: list[str] = []
