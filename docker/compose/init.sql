-- The demo's target table: no primary key, so nothing deduplicates for the connector.
CREATE TABLE public.visits (
    event_id   bigint      NOT NULL,
    user_id    text        NOT NULL,
    page       text        NOT NULL,
    event_time timestamptz NOT NULL
);
