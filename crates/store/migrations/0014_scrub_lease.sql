-- One scrub at a time across every node (issue 9): the node running one holds this lease, renews
-- it as it goes, and ends it when done. A node whose lease ran out (it died) loses it to the next.
CREATE TABLE storage_scrub_lease (
    id INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
INSERT INTO storage_scrub_lease (id, holder, lease_until) VALUES (1, '', 0);
