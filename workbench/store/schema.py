"""The trace store's SQL schema: base tables, the documented views, and migrations.

Users query the views (``runs``, ``subgraph_runs``, ``steps``, ``llm_calls``, ``interrupts``, ``state_changes``,
``supersteps``, ``events``, ``tool_calls``, ``run_lineage``) and the ``state_at(run_id, step)``
table macro; the ``wb_*`` base
tables behind them may change between versions, the views keep their columns (docs/sql.md).
"""

from __future__ import annotations

SCHEMA_VERSION = 3

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
    last_step INTEGER,
    owner VARCHAR,
    relation VARCHAR,
    -- v3 (subgraphs): a subgraph's invocation is a child run of the task that called it
    -- (see _v3_subgraphs below); NULL for a run a user started.
    root_run_id VARCHAR,
    caller_run_id VARCHAR,
    caller_step INTEGER,
    caller_task INTEGER,
    path VARCHAR
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
    arg JSON,
    goto JSON
);

CREATE TABLE IF NOT EXISTS wb_changes (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    key VARCHAR NOT NULL,
    op VARCHAR NOT NULL,
    value JSON,
    PRIMARY KEY (run_id, step, key)
);

CREATE TABLE IF NOT EXISTS wb_supersteps (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    tasks JSON NOT NULL,
    joins JSON,
    created_at TIMESTAMP,
    PRIMARY KEY (run_id, step)
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
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    cost_usd DOUBLE,
    latency_ms DOUBLE,
    attempts INTEGER,
    error VARCHAR,
    fingerprint VARCHAR,
    created_at TIMESTAMP,
    PRIMARY KEY (run_id, step, task, attempt, seq)
);

CREATE TABLE IF NOT EXISTS wb_interrupts (
    run_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    task INTEGER NOT NULL,
    node VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    payload JSON,
    response JSON,
    created_at TIMESTAMP,
    resumed_at TIMESTAMP,
    closed BOOLEAN,
    PRIMARY KEY (run_id, step, task, attempt, idx)
);

CREATE TABLE IF NOT EXISTS wb_events (
    run_id VARCHAR NOT NULL,
    step INTEGER,
    kind VARCHAR NOT NULL,
    node VARCHAR,
    detail JSON,
    created_at TIMESTAMP
);

-- Runs deleted from the store ('workbench rm'), kept so that a record of a deleted run that
-- arrives later (a journal loaded after the delete) is dropped instead of bringing it back.
CREATE TABLE IF NOT EXISTS wb_deleted (
    run_id VARCHAR NOT NULL,
    deleted_at TIMESTAMP
);

-- How far each process's journal has been loaded (see store/journal.py), updated in the same
-- transaction as the rows it loads: a frame is loaded exactly once. updated_at is the owner's
-- heartbeat.
CREATE TABLE IF NOT EXISTS wb_journals (
    journal VARCHAR PRIMARY KEY,
    frame BIGINT NOT NULL,
    "offset" BIGINT NOT NULL,
    updated_at TIMESTAMP
);
"""

VIEWS = """
-- runs: one row per run a user started (runs and forks); a subgraph's invocation is a child
-- run of the task that called it, listed in subgraph_runs instead.
CREATE OR REPLACE VIEW runs AS
SELECT run_id, graph, status, started_at, ended_at, parent_run_id, fork_step, input, output, error,
       graph_file, code_version, last_step, relation
FROM wb_runs WHERE caller_run_id IS NULL;

CREATE OR REPLACE VIEW subgraph_runs AS
SELECT run_id, root_run_id, caller_run_id, caller_step, caller_task, path, graph, status, started_at,
       ended_at, parent_run_id, fork_step, input, output, error, last_step
FROM wb_runs WHERE caller_run_id IS NOT NULL;

-- root_run_id and path (the node's path from the root graph, e.g. review/approve) say where a
-- row of a subgraph's child run belongs; for a run a user started they are run_id and node.
CREATE OR REPLACE VIEW steps AS
SELECT t.run_id, t.step, t.node, t.attempt, t.status, t.started_at, t.ended_at, t.duration_ms, t."update",
       t.error, t.task, t.traceback, t.arg, t.goto, coalesce(r.root_run_id, t.run_id) AS root_run_id,
       CASE WHEN r.path IS NULL THEN t.node ELSE r.path || '/' || t.node END AS path
FROM wb_tasks t LEFT JOIN wb_runs r ON r.run_id = t.run_id;

CREATE OR REPLACE VIEW llm_calls AS
SELECT c.run_id, c.step, c.node, c.model, c.messages, c.response, c.prompt_tokens, c.completion_tokens,
       c.cost_usd, c.latency_ms, c.error, c.task, c.seq, c.attempt, c.params, c.attempts, c.fingerprint,
       c.created_at, coalesce(r.root_run_id, c.run_id) AS root_run_id,
       CASE WHEN r.path IS NULL THEN c.node ELSE r.path || '/' || c.node END AS path
FROM wb_llm_calls c LEFT JOIN wb_runs r ON r.run_id = c.run_id WHERE c.kind = 'llm';

CREATE OR REPLACE VIEW tool_calls AS
SELECT c.run_id, c.step, c.node, c.model AS tool, c.messages AS args, c.response AS result, c.latency_ms,
       c.error, c.task, c.seq, c.attempt, c.fingerprint, c.created_at,
       coalesce(r.root_run_id, c.run_id) AS root_run_id,
       CASE WHEN r.path IS NULL THEN c.node ELSE r.path || '/' || c.node END AS path
FROM wb_llm_calls c LEFT JOIN wb_runs r ON r.run_id = c.run_id WHERE c.kind = 'tool';

CREATE OR REPLACE VIEW interrupts AS
SELECT i.run_id, i.step, i.node, i.payload, i.response, i.created_at, i.resumed_at, i.task, i.attempt, i.idx,
       CASE WHEN r.root_run_id IS NULL THEN '' ELSE substr(i.run_id, length(r.root_run_id) + 2) || '/' END
           || concat(i.step, '.', i.task, '.', i.attempt, '.', i.idx) AS interrupt_id,
       CASE WHEN i.resumed_at IS NULL THEN 'open' WHEN coalesce(i.closed, false) OR i.response IS NULL THEN 'closed'
            ELSE 'answered' END AS status,
       coalesce(r.root_run_id, i.run_id) AS root_run_id,
       CASE WHEN r.path IS NULL THEN i.node ELSE r.path || '/' || i.node END AS path
FROM wb_interrupts i LEFT JOIN wb_runs r ON r.run_id = i.run_id;

CREATE OR REPLACE VIEW state_changes AS
SELECT run_id, step, key, op, value FROM wb_changes;

CREATE OR REPLACE VIEW supersteps AS
SELECT run_id, step, tasks, created_at FROM wb_supersteps;

CREATE OR REPLACE VIEW events AS
SELECT e.run_id, e.step, e.kind, e.node, e.detail, e.created_at, coalesce(r.root_run_id, e.run_id) AS root_run_id,
       CASE WHEN r.path IS NULL THEN e.node WHEN e.node IS NULL THEN r.path ELSE r.path || '/' || e.node END AS path
FROM wb_events e LEFT JOIN wb_runs r ON r.run_id = e.run_id;

-- A fork shares its parent's history up to its fork step instead of copying it. run_lineage
-- lists, for each run, itself and every ancestor with the last step taken from that ancestor
-- (depth 0 is the run itself).
CREATE OR REPLACE VIEW run_lineage AS
WITH RECURSIVE lin(run_id, ancestor_id, upto_step, depth) AS (
    SELECT run_id, run_id, 2147483647, 0 FROM wb_runs
    UNION ALL
    SELECT lin.run_id, r.parent_run_id, least(lin.upto_step, r.fork_step), lin.depth + 1
    FROM lin JOIN wb_runs r ON r.run_id = lin.ancestor_id
    WHERE r.parent_run_id IS NOT NULL AND lin.depth < 1000
)
SELECT run_id, ancestor_id, upto_step, depth FROM lin;

-- The full state of a run after a step, rebuilt from the stored changes of the run and its
-- ancestors: for each key, the last whole value written at or before the step, followed by
-- every item appended since. At the same step an ancestor's change comes before the fork's.
CREATE OR REPLACE MACRO state_at(rid, s) AS TABLE
WITH ch AS (
    SELECT c.key, c.op, c.value, c.step, l.depth
    FROM run_lineage l JOIN wb_changes c ON c.run_id = l.ancestor_id
    WHERE l.run_id = rid AND c.step <= least(l.upto_step, s)
), ordered AS (
    SELECT *, row_number() OVER (ORDER BY step, depth DESC) AS pos FROM ch
), last_set AS (
    SELECT key, max(pos) AS set_pos FROM ordered WHERE op = 'set' GROUP BY key
), parts AS (
    SELECT o.key, o.op, o.value, o.pos
    FROM ordered o LEFT JOIN last_set USING (key)
    WHERE o.pos >= coalesce(last_set.set_pos, -1)
), folded AS (
    SELECT key,
           CASE WHEN count(*) FILTER (WHERE op = 'extend') = 0
                THEN any_value(value) FILTER (WHERE op = 'set')
                ELSE to_json(flatten(list(json_extract(value, '$[*]') ORDER BY pos)))
           END AS value
    FROM parts GROUP BY key
)
SELECT rid AS run_id, s AS step, json_group_object(key, value) AS state FROM folded;
"""

# 2 -> 3, control from inside a node (issue 9 §3): a task's Command destinations
# (wb_tasks.goto), and interrupts closed without an answer (wb_interrupts.closed). Kept apart so
# that other v3 additions can be combined with it.
_V3_CONTROL = """
ALTER TABLE wb_tasks ADD COLUMN IF NOT EXISTS goto JSON;
ALTER TABLE wb_interrupts ADD COLUMN IF NOT EXISTS closed BOOLEAN;
"""


def migrate_v3_conversations() -> str:
    """2 -> 3, conversations (issue 9 §2): how a run relates to its parent (``relation``:
    'fork' or 'continuation'; the forks recorded before are forks), and the tombstones of deleted
    runs (``wb_deleted``, created with the other tables right after the migrations run)."""
    return """
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS relation VARCHAR;
    UPDATE wb_runs SET relation = 'fork' WHERE parent_run_id IS NOT NULL AND relation IS NULL;
    """


def _v3_subgraphs() -> str:
    """2 -> 3, subgraphs (issue 9 §1; in the same step as _V3_CONTROL): a subgraph's invocation is
    recorded as a child run of the task that called it. ``root_run_id``: the run a user started that it belongs to;
    ``caller_run_id``/``caller_step``/``caller_task``: the task that called it; ``path``: the
    calling node's path from the root graph (``review``, ``review/inner``)."""
    return """
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS root_run_id VARCHAR;
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS caller_run_id VARCHAR;
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS caller_step INTEGER;
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS caller_task INTEGER;
    ALTER TABLE wb_runs ADD COLUMN IF NOT EXISTS path VARCHAR;
    """


# Each entry upgrades a database from version N (its index + 1) to N + 1.
MIGRATIONS: list[str] = [
    # 1 -> 2: who records a run (for exactly-once claims), token counts that do not overflow,
    # natural keys enforced (duplicates that older versions could store are dropped first, the
    # first recorded row kept), the journals' load positions. (wb_tasks has no natural key: an
    # attempt that asked a human is recorded once per time it ran.)
    """
    ALTER TABLE wb_runs ADD COLUMN owner VARCHAR;
    ALTER TABLE wb_llm_calls ALTER prompt_tokens TYPE BIGINT;
    ALTER TABLE wb_llm_calls ALTER completion_tokens TYPE BIGINT;
    DELETE FROM wb_changes WHERE rowid NOT IN (SELECT min(rowid) FROM wb_changes GROUP BY run_id, step, key);
    DELETE FROM wb_supersteps WHERE rowid NOT IN (SELECT min(rowid) FROM wb_supersteps GROUP BY run_id, step);
    DELETE FROM wb_llm_calls WHERE rowid NOT IN
        (SELECT min(rowid) FROM wb_llm_calls GROUP BY run_id, step, task, attempt, seq);
    DELETE FROM wb_interrupts WHERE rowid NOT IN
        (SELECT min(rowid) FROM wb_interrupts GROUP BY run_id, step, task, attempt, idx);
    ALTER TABLE wb_changes ADD PRIMARY KEY (run_id, step, key);
    ALTER TABLE wb_supersteps ADD PRIMARY KEY (run_id, step);
    ALTER TABLE wb_llm_calls ADD PRIMARY KEY (run_id, step, task, attempt, seq);
    ALTER TABLE wb_interrupts ADD PRIMARY KEY (run_id, step, task, attempt, idx);
    """,
    # 2 -> 3: control from inside a node, conversations and subgraphs (issue 9); each part only
    # adds columns (IF NOT EXISTS) or fills a new one, so the step may be applied again
    _V3_CONTROL + migrate_v3_conversations() + _v3_subgraphs(),
]
