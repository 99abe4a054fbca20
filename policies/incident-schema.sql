-- The incident's schema (HoneyChat, PostgreSQL 16), with real-looking and test users.
-- Loaded by `blastwall demo` and by the integration tests.
CREATE SEQUENCE web_user_id_seq START 91111111;

-- OAuth signups leave the id out: the sequence mints it (negative). Telegram users bring their
-- own positive id from the message envelope; test users get an attribute (auth_source =
-- 'test'), never an id in the minted space.
CREATE TABLE users (
    id          bigint PRIMARY KEY DEFAULT -nextval('web_user_id_seq'),
    auth_source text   NOT NULL DEFAULT 'oauth',
    plan        text   NOT NULL DEFAULT 'free',
    email       text
);
CREATE INDEX users_auth_source_idx ON users (auth_source);

CREATE TABLE subscriptions (
    id      bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan    text   NOT NULL
);

CREATE TABLE chat_sessions (
    id      bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title   text
);

CREATE TABLE web_messages (
    id         bigserial PRIMARY KEY,
    session_id bigint NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    body       text
);

-- Telegram users: positive ids.
INSERT INTO users (id, auth_source, plan, email)
SELECT g, 'telegram', CASE WHEN g % 3 = 0 THEN 'premium' ELSE 'free' END, NULL
FROM generate_series(1000001, 1000040) g;

-- Test users, hard-coded into what looked like a safe negative window.
INSERT INTO users (id, auth_source, plan, email)
SELECT -g, 'test', 'free', 'qa+' || g || '@example.test'
FROM generate_series(91111101, 91111110) g;

-- Real OAuth users whose ids drifted into the same window (the sequence moved past the tests).
INSERT INTO users (auth_source, plan, email)
SELECT 'oauth', 'premium', 'user' || g || '@example.com'
FROM generate_series(1, 10) g;

-- Every user has a subscription, two chat sessions and three messages per session.
INSERT INTO subscriptions (user_id, plan) SELECT id, plan FROM users;
INSERT INTO chat_sessions (user_id, title) SELECT id, 'session ' || s FROM users, generate_series(1, 2) s;
INSERT INTO web_messages (session_id, body) SELECT id, 'message ' || m FROM chat_sessions, generate_series(1, 3) m;
ANALYZE;
