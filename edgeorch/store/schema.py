"""Schema of the state file, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of migrations applied. A migration is
appended, never edited, once released: old state files must still open (a
frozen version-1 file under ``tests/fixtures`` is migrated by a test).
Documented table by table in ``docs/state.md``.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the core engine.
    """
    CREATE TABLE pipeline_versions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        source_file TEXT NOT NULL,
        source_text TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (name, content_hash)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        pipeline TEXT NOT NULL,
        pipeline_version_id INTEGER NOT NULL REFERENCES pipeline_versions(id),
        state TEXT NOT NULL,
        params TEXT NOT NULL,
        trigger TEXT NOT NULL,
        actor TEXT,
        run_dir TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        reason TEXT
    );
    CREATE INDEX runs_by_pipeline ON runs (pipeline, id);
    CREATE INDEX runs_by_state ON runs (state);
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        definition_hash TEXT NOT NULL,
        input_hash TEXT,
        started_at REAL,
        finished_at REAL,
        next_attempt_at REAL,
        cached_from INTEGER,
        reason TEXT,
        UNIQUE (run_id, name)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        pid_start_time INTEGER,
        pgid INTEGER,
        shim_pid INTEGER,
        shim_start_time INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        started_at REAL NOT NULL,
        finished_at REAL,
        log_path TEXT NOT NULL,
        attempt_dir TEXT NOT NULL,
        definition_hash TEXT NOT NULL,
        input_hash TEXT NOT NULL,
        reason TEXT,
        UNIQUE (task_id, number)
    );
    CREATE INDEX attempts_by_run ON attempts (run_id, task);
    CREATE INDEX attempts_live ON attempts (state) WHERE state IN ('starting', 'running');
    CREATE INDEX attempts_by_cache_key ON attempts (definition_hash, input_hash);
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        attempt_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX artifacts_by_run ON artifacts (run_id, task);
    CREATE INDEX artifacts_by_attempt ON artifacts (attempt_id);
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        attempt_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX checkpoints_by_run ON checkpoints (run_id, task);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        run_id INTEGER,
        task TEXT,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        actor TEXT
    );
    CREATE INDEX events_by_run ON events (run_id);
    """,
    # 2: results of built-in check tasks (profile, drift, fairness, validate), structured event data.
    """
    CREATE TABLE task_results (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        attempt_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        column_name TEXT,
        metric TEXT,
        value REAL,
        p_value REAL,
        threshold REAL,
        verdict TEXT,
        details TEXT
    );
    CREATE INDEX task_results_by_run ON task_results (run_id, task);
    ALTER TABLE events ADD COLUMN data TEXT;
    ALTER TABLE attempts ADD COLUMN verdict TEXT;
    """,
    # 3: the daemon: paused pipelines survive restarts.
    """
    CREATE TABLE pipeline_state (
        name TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        actor TEXT,
        changed_at REAL NOT NULL
    );
    """,
    # 4: resources: the hardware leased to each attempt (rebuilt after a restart, so
    # adopted attempts keep their cores and GPUs and nothing is oversubscribed).
    """
    CREATE TABLE leases (
        attempt_id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        cores TEXT NOT NULL,
        gpus TEXT NOT NULL,
        memory INTEGER NOT NULL DEFAULT 0,
        pool TEXT,
        lease TEXT NOT NULL,
        granted_at REAL NOT NULL,
        released_at REAL
    );
    CREATE INDEX leases_held ON leases (released_at) WHERE released_at IS NULL;
    """,
    # 5: triggers: each schedule's last handled fire (a restart neither loses nor repeats one),
    # and every file that arrived in a drop folder (the claim protocol of docs/triggers.md).
    """
    CREATE TABLE schedule_state (
        pipeline TEXT PRIMARY KEY,
        last_fire TEXT NOT NULL
    );
    CREATE TABLE inputs (
        id INTEGER PRIMARY KEY,
        pipeline TEXT NOT NULL,
        watch_folder TEXT NOT NULL,
        source_name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        inbox_path TEXT,
        dev INTEGER,
        ino INTEGER,
        size INTEGER,
        sha256 TEXT,
        state TEXT NOT NULL,
        run_id INTEGER,
        reason TEXT,
        arrived_at REAL NOT NULL,
        claimed_at REAL,
        updated_at REAL
    );
    CREATE INDEX inputs_state ON inputs (state);
    CREATE INDEX inputs_sha ON inputs (pipeline, sha256);
    CREATE INDEX inputs_run ON inputs (run_id);
    CREATE INDEX runs_by_trigger ON runs (trigger);
    """,
    # 6: a per-run environment (a drop-in folder's file reaches the task in the watch's variable).
    """
    ALTER TABLE runs ADD COLUMN env TEXT;
    """,
    # 7: repair the artifact rows that cache hits multiplied (issue 9, item 1): every
    # hit copied all earlier copies too, doubling the rows of a task per run. A copy is identical
    # in run, task, source attempt, name and time; keep the first of each.
    """
    DELETE FROM artifacts WHERE id NOT IN
        (SELECT MIN(id) FROM artifacts GROUP BY run_id, task, attempt_id, name, created_at);
    """,
    # 8: an attempt lost to edgeorch's own machinery (its launcher died) is not charged to the task's retries.
    """
    ALTER TABLE attempts ADD COLUMN charged INTEGER NOT NULL DEFAULT 1;
    """,
    # 9: the inbox retention rule ([inbox] keep) removed this input's file; the record stays (lineage).
    """
    ALTER TABLE inputs ADD COLUMN removed_at REAL;
    """,
    # 10: the audit log (docs/audit.md): hash-chained records, forward-secure seals of the chain's head,
    # and the checkpoints that pruning leaves. Append-only: triggers refuse UPDATE and DELETE (defence in
    # depth; the chain and the seals are the guarantee). Records up to a checkpoint may be deleted (pruned).
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        uid INTEGER,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE audit_seals (
        epoch INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        ts TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only (edgeorch audit prune removes old records)'); END;
    CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals
    BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END;
    CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals
    BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
    """,
    # 11: lineage (docs/lineage.md): what each attempt (or cache hit) consumed, hashed before it started;
    # the files of folder and glob inputs, stored once per manifest; and the indexes that let a lineage
    # query find a file's producers and consumers by path or content.
    """
    CREATE TABLE consumed (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        attempt_id INTEGER,
        kind TEXT NOT NULL,
        spec TEXT,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER,
        source_run INTEGER,
        source_task TEXT,
        source_attempt INTEGER,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX consumed_by_task ON consumed (run_id, task);
    CREATE INDEX consumed_by_sha256 ON consumed (sha256);
    CREATE INDEX consumed_by_path ON consumed (path);
    CREATE TABLE manifest_files (
        manifest TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (manifest, name)
    ) WITHOUT ROWID;
    CREATE INDEX manifest_files_by_sha256 ON manifest_files (sha256);
    CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);
    CREATE INDEX artifacts_by_path ON artifacts (path);
    CREATE INDEX inputs_by_sha256 ON inputs (sha256);
    CREATE INDEX inputs_by_inbox_path ON inputs (inbox_path);
    CREATE INDEX inputs_by_source_path ON inputs (source_path);
    CREATE INDEX tasks_by_cached_from ON tasks (cached_from) WHERE cached_from IS NOT NULL;
    """,
    # 12: data versions (docs/datasets.md): named datasets and their numbered versions, each a manifest of
    # files whose content is a list of content-defined chunks; every chunk is stored once, as an object
    # under <state dir>/datasets/objects (refs: how many file positions of all versions use it; a chunk
    # whose refs reach 0 is removed with the versions that used it); holds keep a version from retention.
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE dataset_versions (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,
        source_path TEXT,
        run_id INTEGER,
        task TEXT,
        input_id INTEGER,
        actor TEXT,
        files INTEGER NOT NULL,
        size INTEGER NOT NULL,
        new_chunks INTEGER NOT NULL,
        new_bytes INTEGER NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        UNIQUE (dataset_id, version)
    );
    CREATE INDEX dataset_versions_by_run ON dataset_versions (run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX dataset_versions_by_input ON dataset_versions (input_id) WHERE input_id IS NOT NULL;
    CREATE TABLE dataset_files (
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        chunks TEXT NOT NULL,
        PRIMARY KEY (version_id, path)
    ) WITHOUT ROWID;
    CREATE INDEX dataset_files_by_sha256 ON dataset_files (sha256);
    CREATE TABLE dataset_chunks (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        codec TEXT NOT NULL,
        refs INTEGER NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE dataset_holds (
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        holder TEXT NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (version_id, holder)
    ) WITHOUT ROWID;
    """,
    # 13: models (docs/models.md): named models and their numbered versions (the artifact's sha256 or folder
    # manifest, metrics, the check results and what made it), gate and deployment decisions with every
    # condition, aliases and their history (who moved them, why), deployments as durable intents whose
    # step says how far a switch got (recovery finishes or undoes it), canaries and the metrics observed
    # while one runs. At most one deployment of a model runs at a time, at most one canary is open.
    """
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        policy TEXT
    );
    CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER,
        metrics TEXT NOT NULL,
        checks TEXT,
        run_id INTEGER,
        task TEXT,
        attempt_id INTEGER,
        pipeline TEXT,
        content_hash TEXT,
        params TEXT,
        inputs TEXT,
        gate_verdict TEXT NOT NULL,
        UNIQUE (model_id, version)
    );
    CREATE INDEX model_versions_by_run ON model_versions (run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX model_versions_by_sha256 ON model_versions (sha256);
    CREATE TABLE model_decisions (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES model_versions(id),
        kind TEXT NOT NULL,
        verdict TEXT NOT NULL,
        alias TEXT,
        against_version INTEGER,
        conditions TEXT NOT NULL,
        summary TEXT NOT NULL,
        deployment_id INTEGER,
        decided_at REAL NOT NULL
    );
    CREATE INDEX model_decisions_by_version ON model_decisions (version_id, id);
    CREATE TABLE model_aliases (
        model_id INTEGER NOT NULL REFERENCES models(id),
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        moved_at REAL NOT NULL,
        PRIMARY KEY (model_id, alias)
    ) WITHOUT ROWID;
    CREATE TABLE model_alias_history (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        alias TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER,
        action TEXT NOT NULL,
        actor TEXT,
        reason TEXT,
        deployment_id INTEGER,
        moved_at REAL NOT NULL
    );
    CREATE INDEX model_alias_history_by_alias ON model_alias_history (model_id, alias, id);
    CREATE TABLE model_deployments (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        alias TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER,
        action TEXT NOT NULL,
        strategy TEXT NOT NULL,
        target TEXT NOT NULL,
        actor TEXT,
        reason TEXT,
        state TEXT NOT NULL,
        step TEXT NOT NULL,
        outcome TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX model_deployments_open ON model_deployments (state) WHERE state IN ('pending', 'running');
    CREATE UNIQUE INDEX model_deployments_one_running ON model_deployments (model_id) WHERE state = 'running';
    CREATE TABLE model_canaries (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        version INTEGER NOT NULL,
        against_version INTEGER,
        mode TEXT NOT NULL,
        share REAL,
        window_batches INTEGER,
        window_seconds REAL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at REAL NOT NULL,
        decided_at REAL,
        outcome TEXT
    );
    CREATE UNIQUE INDEX model_canaries_one_open ON model_canaries (model_id) WHERE state IN ('running', 'deciding');
    CREATE TABLE model_observations (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        version INTEGER NOT NULL,
        alias TEXT,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        run_id INTEGER,
        task TEXT,
        observed_at REAL NOT NULL
    );
    CREATE INDEX model_observations_by_version ON model_observations (model_id, version, metric, id);
    """,
    # 14: privacy budgets (docs/privacy.md): per dataset, the total (epsilon, delta) its differentially
    # private releases may spend, and the ledger of what each release spent (never removed: a spend
    # outlives its run, or the budget would be refunded). Both are audited.
    """
    CREATE TABLE privacy_budgets (
        dataset TEXT PRIMARY KEY,
        epsilon REAL NOT NULL,
        delta REAL NOT NULL,
        actor TEXT,
        set_at REAL NOT NULL
    );
    CREATE TABLE privacy_spends (
        id INTEGER PRIMARY KEY,
        dataset TEXT NOT NULL REFERENCES privacy_budgets(dataset),
        epsilon REAL NOT NULL,
        delta REAL NOT NULL,
        release TEXT NOT NULL,
        run_id INTEGER,
        task TEXT,
        actor TEXT,
        spent_at REAL NOT NULL
    );
    CREATE INDEX privacy_spends_by_dataset ON privacy_spends (dataset, id);
    """,
    # 15: monitoring rules (docs/monitoring.md): each rule's state between evaluations (hysteresis, episode,
    # cursor: the newest run it evaluated, silence) and every firing with its signal, responses and the run it
    # started (created in the same transaction as the state change: a rule answers once per episode).
    """
    CREATE TABLE rule_state (
        rule TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        state TEXT NOT NULL,
        consecutive INTEGER NOT NULL DEFAULT 0,
        holding_since REAL,
        episode INTEGER NOT NULL DEFAULT 0,
        responded INTEGER NOT NULL DEFAULT 0,
        last_value REAL,
        last_signal TEXT,
        last_evaluated_at REAL,
        last_fired_at REAL,
        cursor INTEGER NOT NULL DEFAULT 0,
        silenced_until REAL,
        silence_reason TEXT,
        silence_actor TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE rule_firings (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        episode INTEGER NOT NULL,
        fired_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        dry_run INTEGER NOT NULL DEFAULT 0,
        dedupe_key TEXT,
        value REAL,
        threshold REAL,
        signal TEXT NOT NULL,
        responses TEXT NOT NULL,
        run_id INTEGER,
        state TEXT NOT NULL
    );
    CREATE INDEX rule_firings_by_rule ON rule_firings (rule, fired_at);
    CREATE INDEX rule_firings_by_run ON rule_firings (run_id);
    CREATE INDEX rule_firings_open ON rule_firings (state) WHERE state = 'pending';
    """,
    # 16: monitoring that acts, continued (docs/monitoring.md): blocks on a model's promotions (set by a rule's
    # block_promotions response, by name so a model may be blocked before its first version; lifted when the rule
    # resolves, at ``until``, or by a person) and named, versioned baselines (a data profile a drift task compares
    # with: reference = "baseline:NAME").
    """
    CREATE TABLE model_blocks (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        rule TEXT,
        reason TEXT NOT NULL,
        actor TEXT,
        blocked_at REAL NOT NULL,
        until REAL,
        lifted_at REAL,
        lifted_by TEXT,
        lift_reason TEXT
    );
    CREATE INDEX model_blocks_open ON model_blocks (model) WHERE lifted_at IS NULL;
    CREATE TABLE baselines (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        actor TEXT,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        rows INTEGER,
        columns TEXT NOT NULL,
        profile TEXT NOT NULL,
        description TEXT,
        UNIQUE (name, version)
    );
    """,
    # 17: retention's lineage hold (runs whose outputs another run consumed) and lineage's
    # downstream queries look consumed rows up by their producer; without these, each page of
    # `edgeorch gc` scanned the whole table.
    """
    CREATE INDEX consumed_by_source_run ON consumed (source_run);
    CREATE INDEX consumed_by_source_attempt ON consumed (source_attempt);
    """,
    # 18: runs per state, kept by triggers in the transaction of every insert, state change and delete of a run
    # (whichever code path writes it), so `status` reads five rows instead of counting the whole history
    # (issue 11: 13 ms with 100,000 runs).
    """
    CREATE TABLE run_counts (
        state TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO run_counts (state, n) SELECT state, COUNT(*) FROM runs GROUP BY state;
    CREATE TRIGGER run_counts_insert AFTER INSERT ON runs BEGIN
        INSERT INTO run_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER run_counts_update AFTER UPDATE OF state ON runs WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE run_counts SET n = n - 1 WHERE state = OLD.state;
        INSERT INTO run_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER run_counts_delete AFTER DELETE ON runs BEGIN
        UPDATE run_counts SET n = n - 1 WHERE state = OLD.state;
    END;
    """,
    # 19: a task's charged attempts before the last resume (`edgeorch retry`): the resume gives it its
    # `retries` again, counted from there (attempt numbers go on).
    """
    ALTER TABLE tasks ADD COLUMN retries_from INTEGER NOT NULL DEFAULT 0;
    """,
    # 20: each start of a run (its `run_running` events), so `runs.list` finds the page's resumed runs
    # without reading every event of a run of 10,000 tasks.
    """
    CREATE INDEX events_run_starts ON events (run_id, ts) WHERE kind = 'run_running';
    """,
    # 21: a run's cancel, kept until it ends (or is resumed): a daemon that restarts while a cancelled run's
    # attempts are still stopping stops them again and starts nothing more (it forgot the cancel: the run
    # retried, or ended failed). An active run cancelled under an older edgeorch (its `cancel_requested` event,
    # "run N: REASON") keeps its cancel through the upgrade: it ended `failed`, and was retried as a failure.
    """
    ALTER TABLE runs ADD COLUMN cancel_reason TEXT;
    UPDATE runs SET cancel_reason = (
        SELECT substr(e.message, length('run ' || runs.id || ': ') + 1) FROM events e
        WHERE e.run_id = runs.id AND e.kind = 'cancel_requested' ORDER BY e.id DESC LIMIT 1)
    WHERE state IN ('queued', 'running');
    """,
    # 22: when a daemon last loaded each pipeline version from its file (valid), run or not: a daemon started
    # while the file has errors serves that one, not the last version a run happened to record.
    """
    ALTER TABLE pipeline_versions ADD COLUMN loaded_at REAL;
    """,
    # 23: a declared input that changed while the attempt ran (its path): its outputs may come from either
    # version, so the attempt is never a cache hit (a result built from v2 was keyed, and later served, as v1).
    """
    ALTER TABLE attempts ADD COLUMN inputs_moved TEXT;
    """,
    # 24: a run asked to use no recorded results (`edgeorch run --no-cache`): each of its tasks runs (its result is
    # recorded, and serves later runs), also when it is resumed after a restart or retried.
    """
    ALTER TABLE runs ADD COLUMN no_cache INTEGER NOT NULL DEFAULT 0;
    """,
    # 25: a claimed file's modification time as inspected, with its intent: a claim redone after a crash knows
    # the daemon user's copy of another user's file by it (triggers/drop/owncopy.py).
    """
    ALTER TABLE inputs ADD COLUMN mtime_ns INTEGER;
    """,
    # 26: provenance outlives content and readers (docs/lineage.md): a pruned data version keeps its row, marked
    # pruned (when, by whom; its file rows and chunks go), so lineage still reaches where it came from; and the
    # runs that read a version, when `edgeorch gc` removes them (their `consumed` rows go), are named per version
    # in gc's own transaction, so lineage says they were removed instead of "nothing recorded".
    """
    ALTER TABLE dataset_versions ADD COLUMN pruned_at REAL;
    ALTER TABLE dataset_versions ADD COLUMN pruned_by TEXT;
    CREATE TABLE dataset_readers_gone (
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        run_id INTEGER NOT NULL,
        task TEXT NOT NULL,
        removed_at REAL NOT NULL,
        actor TEXT,
        PRIMARY KEY (version_id, run_id, task)
    ) WITHOUT ROWID;
    """,
    # 27: the pipeline file a run was started from: a version is content (name and hash), and a run of a copy of
    # that content at another path recorded the first path that content had (`show` named another file, and
    # `retry --current` reran it, ignoring the edit of the file that was run). NULL for older runs: their
    # version's file.
    """
    ALTER TABLE runs ADD COLUMN pipeline_file TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
