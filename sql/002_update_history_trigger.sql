-- 002_update_history_trigger: record every level change of a content.
--
-- The seed's trigger logged every UPDATE, so a silver -> silver update left a
-- history row that was no change at all.  Ours logs only when content_level
-- really changes (<=> so that NULLs compare too).
--
-- contents.update_time means "last level change".  A writer that changes the
-- level without setting update_time would leave it (and the history row's
-- new_updated_date) at the previous change, so the BEFORE trigger stamps
-- NOW(3) in that case; a writer that sets update_time itself keeps its value.

DROP TRIGGER IF EXISTS contents_level_stamp;
DROP TRIGGER IF EXISTS contents_level_history;

DELIMITER //
CREATE TRIGGER contents_level_stamp BEFORE UPDATE ON contents FOR EACH ROW
BEGIN
    IF NOT (OLD.content_level <=> NEW.content_level)
       AND OLD.update_time <=> NEW.update_time THEN
        SET NEW.update_time = NOW(3);
    END IF;
END//

CREATE TRIGGER contents_level_history AFTER UPDATE ON contents FOR EACH ROW
BEGIN
    IF NOT (OLD.content_level <=> NEW.content_level) THEN
        INSERT INTO update_history
            (cid, old_updated_date, old_content_level, new_updated_date, new_content_level)
        VALUES
            (NEW.cid, OLD.update_time, OLD.content_level, NEW.update_time, NEW.content_level);
    END IF;
END//
DELIMITER ;
