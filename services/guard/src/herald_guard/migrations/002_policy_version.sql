-- The tenant policy each decision was made under (`v<version>-<sha256 prefix>`), for explain and backtests.
ALTER TABLE decisions ADD COLUMN policy_version text;
