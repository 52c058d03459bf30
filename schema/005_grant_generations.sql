-- 005_grant_generations.sql - an operator's tokens belong to the grant they
-- were issued under (src/auth/operator.c).
--
-- A token is checked against its (operator, tenant) grant on every request.
-- Removing the grant ended the token, but granting the same pair again made
-- the token valid again, for the rest of its hour: an operator the admin had
-- cut off, then let back in, got its old tokens back.  A grant now carries a
-- generation, and a token the generation of the grant it was issued under; a
-- token is accepted only while the pair's grant has that same generation.
-- A grant created again gets a generation above every token of the pair, so
-- no earlier token matches it.  Changing a grant's scopes keeps its
-- generation (its tokens stay, narrowed to the new scopes).
--
-- Grants and tokens from before this migration share generation 0 and stay
-- valid until the grant is removed.
ALTER TABLE _operator_grants ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE _operator_tokens ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
