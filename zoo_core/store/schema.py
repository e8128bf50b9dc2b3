"""The SQLite store's schema, as an ordered list of migrations (:data:`MIGRATIONS`).

Entry i takes a file from ``PRAGMA user_version`` i to i + 1. Never edit a released entry;
append a new one. :mod:`zoo_core.store.sqlite` applies them (it reads ``sqlite.MIGRATIONS``).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the initial schema
    (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            model TEXT NOT NULL,
            dataset TEXT NOT NULL,
            plugin TEXT NOT NULL,
            plugin_version TEXT NOT NULL,
            zoo_version TEXT NOT NULL,
            tf_version TEXT NOT NULL,
            config TEXT NOT NULL,
            config_id TEXT NOT NULL,
            seed INTEGER NOT NULL,
            data_checksums TEXT NOT NULL,
            split_sizes TEXT NOT NULL,
            params INTEGER,
            epochs_run INTEGER NOT NULL DEFAULT 0,
            best_epoch INTEGER,
            train_seconds REAL,
            examples_per_sec REAL,
            val_accuracy REAL,
            test_loss REAL,
            test_accuracy REAL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT,
            run_dir TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX runs_by_started_at ON runs (started_at)",
        "CREATE INDEX runs_by_model_dataset ON runs (model, dataset)",
        """CREATE TABLE epochs (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL,
            train_loss REAL,
            train_accuracy REAL,
            val_loss REAL,
            val_accuracy REAL,
            lr REAL,
            seconds REAL,
            PRIMARY KEY (run_id, epoch)
        )""",
    ),
    # 2: the user's tags, and the process that owns a run (host, pid), so that a run whose
    # process died shows as interrupted rather than running
    (
        "ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
    ),
    # 3: the owner's process start (a reused pid is not the owner) and its heartbeat, so that
    # a run whose process died anywhere (kill -9, the out-of-memory killer, a full disk)
    # shows as interrupted and can be resumed
    (
        "ALTER TABLE runs ADD COLUMN owner_started TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
    ),
    # 4: sweeps (issue 15): a sweep's record, its trials' specs, and which sweep a run is a
    # trial of; run_dir is written relative to the artifacts folder from now on (absolute
    # paths written before are read as they are)
    (
        """CREATE TABLE sweeps (
            sweep_id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            engine TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active'
        )""",
        "ALTER TABLE runs ADD COLUMN sweep_id TEXT",
        "CREATE INDEX runs_by_sweep ON runs (sweep_id)",
    ),
    # 5: the precision a run computed in on the machine that ran it (issue 27): its config
    # records the one asked for, the same on every machine (docs/architecture.md)
    (
        "ALTER TABLE runs ADD COLUMN precision TEXT",
    ),
]
