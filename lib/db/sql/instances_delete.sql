DELETE FROM klingq.instances WHERE id = $1
