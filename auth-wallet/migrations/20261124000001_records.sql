-- One row per secret. Deleted secrets keep their row (value cleared, `deleted` set) so a
-- re-created key continues its version count and an old version never matches again.
CREATE TABLE IF NOT EXISTS auth_wallet_records (
    key           text PRIMARY KEY COLLATE "C",
    value         bytea,
    created       bigint  NOT NULL,
    updated       bigint  NOT NULL,
    last_accessed bigint,
    version       bigint  NOT NULL,
    deleted       boolean NOT NULL DEFAULT false
);
