-- The incident's QA scripts, as they ran (the incident is told at the top of README.md).
\set ON_ERROR_STOP on

-- Seeding test users with hard-coded ids: silently overwrote real users on collision.
INSERT INTO users (id, auth_source, plan) VALUES (-91111101, 'test', 'free')
  ON CONFLICT (id) DO UPDATE SET plan = EXCLUDED.plan, auth_source = EXCLUDED.auth_source;

-- The sign-up retry that moved the sequence into the test window.
SELECT setval('web_user_id_seq', GREATEST(-MIN(id), currval('web_user_id_seq'))) FROM users;

-- The nightly cleanup.
DELETE FROM users
 WHERE id BETWEEN -91111200 AND -91111100;
