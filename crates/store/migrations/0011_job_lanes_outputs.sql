-- Fair, safe jobs (issue 8): claims per lane, fair between organizations, and the objects a
-- running job has stored, leased to it so the orphan sweep never takes them.

-- One row per object a job attempt has stored (or is about to store): written before the object,
-- so an object of a running job is never without a reference. The job commits its outputs (blob
-- rows) and drops these rows in one transaction; a failed or abandoned attempt's objects are
-- removed with their rows. `worker` is the attempt's claim: a lease whose job is no longer
-- running under that worker is abandoned.
CREATE TABLE job_outputs (
    blob_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX job_outputs_job ON job_outputs (job_id, worker);

-- A claim counts each organization's running jobs of the lane.
CREATE INDEX jobs_org_running ON jobs (org_id, status, kind);
