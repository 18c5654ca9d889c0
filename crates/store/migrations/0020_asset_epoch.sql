-- The asset epoch (issue 8, small requests). A node keeps the asset rows it read for reads
-- (each with its blob row: where the bytes are and the wrapped data key) in memory; this
-- counter, the second row of authz_epoch, tells it when to forget them. The triggers of this
-- migration (one script per engine, beside this one) move it in the same transaction as every
-- change to an asset or a blob row: trashed, restored, processed, deleted, a data key rewrapped,
-- moved to another region. New rows move nothing: an absent asset is never kept.
INSERT INTO authz_epoch (id, n) VALUES (2, 0);
