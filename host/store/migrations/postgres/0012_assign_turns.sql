-- Whose turn it is in each round-robin assignment rule (`[[cases.assign]]
-- round_robin`): taken in the transaction that opens the case, so servers
-- sharing the store take turns together.
CREATE TABLE assign_turns (
    rule TEXT PRIMARY KEY,
    taken BIGINT NOT NULL
);
