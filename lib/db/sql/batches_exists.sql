-- Whether a batch labelled $1 exists (a job, or its klingq.batches row): the console asks
-- before it reads its reserved segment for the unlabelled batch, so that a real label
-- spelled the same is never acted on by mistake (lib/console/routes.hpp).
SELECT EXISTS (SELECT 1 FROM klingq.jobs WHERE batch = $1)
    OR EXISTS (SELECT 1 FROM klingq.batches WHERE batch = $1)
