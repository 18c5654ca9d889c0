-- The outcome of each storage scrub (`strongroom storage scrub`, or the scheduled one), as JSON
-- counts per backend: no content, no names of anything a user typed.
CREATE TABLE storage_scrubs (
    finished_at BIGINT NOT NULL PRIMARY KEY,
    report TEXT NOT NULL
);
