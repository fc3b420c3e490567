-- SQL recipes over a workbench trace store.
--
-- Every query here reads only the documented views (runs, subgraph_runs, steps, llm_calls,
-- interrupts, state_changes, supersteps, events) and the state_at(run_id, step) macro; see
-- docs/sql.md.
-- Run one with the CLI (read-only):
--
--     workbench sql "SELECT ..."                       # table
--     workbench sql "SELECT ..." --format csv          # or json
--     workbench sql "SELECT ..." --db path/to/other.duckdb
--
-- Where a query is about one run, it picks the most recent one with
--     (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
-- Put a run id in quotes there instead, e.g. '1a20df509e9a0560a'.
-- Timestamps are UTC.
--
-- Runs with subgraphs: a subgraph's steps, model calls and questions are rows of its own run
-- (run_id '1a20df509e9a0560a/2.0.0', not in `runs`); root_run_id is the run a user started
-- that they belong to. Questions about whole runs join and count on root_run_id.


-- 1. The last 20 runs: status, how long they took, how many steps.
SELECT run_id, graph, status, started_at,
       date_diff('millisecond', started_at, ended_at) AS ms,
       last_step AS steps, error
FROM runs
ORDER BY started_at DESC
LIMIT 20;


-- 2. Which node fails most? Failed attempts per node, with how many runs they hit.
--    (A node retried three times and then successful counts two failed attempts.)
SELECT node, count(*) AS failed_attempts, count(DISTINCT root_run_id) AS runs_hit,
       any_value(error) AS example_error
FROM steps
WHERE status = 'failed'
GROUP BY node
ORDER BY failed_attempts DESC;


-- 3. The same question since a deploy: restrict to runs of the current code version of
--    each graph (code_version is a hash of the graph file recorded with each run).
WITH latest AS (
    SELECT graph, arg_max(code_version, started_at) AS code_version FROM runs GROUP BY graph
)
SELECT s.node, count(*) FILTER (WHERE s.status = 'failed') AS failed_attempts,
       count(*) AS attempts
FROM steps s
JOIN runs r ON r.run_id = s.root_run_id  -- a subgraph's steps count for the run they belong to
JOIN latest l ON l.graph = r.graph AND l.code_version = r.code_version
GROUP BY s.node
ORDER BY failed_attempts DESC, s.node;


-- 4. Failure rate of runs per code version: did the last change make things worse?
SELECT graph, code_version, min(started_at) AS first_seen, count(*) AS runs,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       round(100.0 * count(*) FILTER (WHERE status = 'failed') / count(*), 1) AS failed_pct
FROM runs
GROUP BY graph, code_version
ORDER BY graph, first_seen;


-- 5. Nodes that needed retries: how many tasks succeeded only after a failure.
SELECT node, count(*) AS tasks_retried, max(attempt) AS most_attempts
FROM steps
WHERE status = 'completed' AND attempt > 1
GROUP BY node
ORDER BY tasks_retried DESC;


-- 6. Tokens and cost per run (model calls only; a run with no calls shows zeros), its
--    subgraphs' calls included: the totals `workbench runs` shows.
SELECT r.run_id, r.graph, r.status,
       count(c.model) AS model_calls,
       coalesce(sum(c.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(c.completion_tokens), 0) AS completion_tokens,
       round(coalesce(sum(c.cost_usd), 0), 6) AS cost_usd
FROM runs r
LEFT JOIN llm_calls c ON c.root_run_id = r.run_id
GROUP BY r.run_id, r.graph, r.status, r.started_at
ORDER BY r.started_at DESC
LIMIT 20;


-- 7. Spend per model per day.
SELECT CAST(created_at AS DATE) AS day, model, count(*) AS calls,
       sum(prompt_tokens + completion_tokens) AS tokens, round(sum(cost_usd), 4) AS cost_usd,
       round(avg(latency_ms)) AS avg_latency_ms
FROM llm_calls
WHERE error IS NULL
GROUP BY day, model
ORDER BY day DESC, cost_usd DESC;


-- 8. Model calls that needed retries or a fallback model (attempts counts every try,
--    across the fallback chain), and calls that failed outright.
SELECT run_id, step, node, model, attempts, error
FROM llm_calls
WHERE attempts > 1 OR error IS NOT NULL
ORDER BY created_at DESC;


-- 9. The slowest steps: the 10 longest node executions.
SELECT run_id, step, node, attempt, status, round(duration_ms, 1) AS ms
FROM steps
ORDER BY duration_ms DESC
LIMIT 10;


-- 10. Latency per node: median, 95th percentile and worst, over completed attempts.
SELECT node, count(*) AS runs,
       round(quantile_cont(duration_ms, 0.5), 1) AS p50_ms,
       round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms,
       round(max(duration_ms), 1) AS max_ms
FROM steps
WHERE status = 'completed'
GROUP BY node
ORDER BY p95_ms DESC;


-- 11. The full state after step 3 of the most recent run (step 0 is the input plus defaults).
SELECT state
FROM state_at((SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1), 3);


-- 12. One key of that state, as a SQL value: JSON operators work on the state column.
SELECT state ->> 'category' AS category, json_array_length(state -> 'policies') AS policies
FROM state_at((SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1), 3);


-- 13. The same question across every run of a graph: the state after step 1 of each run
--     (state_at can be joined laterally).
SELECT r.run_id, r.status, s.state ->> 'category' AS category
FROM runs r, state_at(r.run_id, 1) s
WHERE r.graph = 'support'
ORDER BY r.started_at DESC;


-- 14. How one key changed during a run: every write, step by step. op is 'set' (the new
--     whole value) or 'extend' (items appended to a list).
SELECT step, op, value
FROM state_changes
WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
  AND key = 'draft'
ORDER BY step;


-- 15. Which way did runs go? Count runs by the node that ended them.
SELECT r.graph, s.node AS last_node, count(*) AS runs
FROM runs r
JOIN steps s ON s.run_id = r.run_id AND s.step = r.last_step AND s.status = 'completed'
WHERE r.status = 'completed'
GROUP BY r.graph, s.node
ORDER BY r.graph, runs DESC;


-- 16. Loops: runs whose draft node ran more than once (redrafts after a failed check).
SELECT run_id, count(DISTINCT step) AS drafts
FROM steps
WHERE node = 'draft' AND status = 'completed'
GROUP BY run_id
HAVING count(DISTINCT step) > 1
ORDER BY drafts DESC;


-- 17. Fan-out width: how many tasks each superstep ran (Send fan-outs show up as wide steps).
SELECT run_id, step, json_array_length(tasks) AS tasks
FROM supersteps
WHERE json_array_length(tasks) > 1
ORDER BY tasks DESC, run_id, step;


-- 18. Who is waiting for a human, and for how long — questions asked inside a subgraph
--     included (path review/approve): answer with workbench resume RUN_ID [--interrupt ID].
SELECT r.run_id, r.graph, i.path, i.interrupt_id, i.payload, i.created_at,
       date_diff('minute', i.created_at, CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP)) AS waiting_minutes
FROM interrupts i
JOIN runs r ON r.run_id = i.root_run_id
WHERE r.status = 'waiting' AND i.resumed_at IS NULL
ORDER BY i.created_at;


-- 19. How long humans take to answer.
SELECT node, count(*) AS answered,
       round(avg(date_diff('second', created_at, resumed_at))) AS avg_seconds,
       max(date_diff('second', created_at, resumed_at)) AS max_seconds
FROM interrupts
WHERE resumed_at IS NOT NULL
GROUP BY node;


-- 20. Breakpoints hit, interrupts raised and resumes, as a timeline of the most recent run.
SELECT created_at, step, kind, node, detail
FROM events
WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
ORDER BY created_at;


-- 21. Find model calls by what was asked: every prompt that mentions "refund".
SELECT run_id, step, node, model, response ->> 'content' AS answer
FROM llm_calls
WHERE CAST(messages AS VARCHAR) ILIKE '%refund%'
ORDER BY created_at DESC
LIMIT 20;


-- 22. The tracebacks of the most recent failures.
SELECT run_id, step, node, attempt, error, traceback
FROM steps
WHERE status = 'failed'
ORDER BY ended_at DESC
LIMIT 5;


-- 23. Storage: bytes of stored state changes per run (it grows with what changed, not with
--     the size of the state), its subgraphs' included (state_changes has no root_run_id:
--     subgraph_runs maps a subgraph's run to it).
SELECT coalesce(g.root_run_id, c.run_id) AS run_id, count(*) AS changes,
       sum(length(CAST(c.value AS VARCHAR))) AS bytes
FROM state_changes c
LEFT JOIN subgraph_runs g ON g.run_id = c.run_id
GROUP BY ALL
ORDER BY bytes DESC
LIMIT 10;
