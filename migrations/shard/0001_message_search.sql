-- Full-text search over message content. The trigram tokenizer matches any run of 3 or more
-- characters, so it works for languages written without spaces (CJK) as well as for words, and
-- with remove_diacritics "cafe" finds "Café". The index holds its own copy of the text (rowid =
-- the message's rowid), which snippet() needs. Triggers keep it in step with every write; a reply
-- is indexed once, when it finishes (its text reaches D1 only then).
CREATE VIRTUAL TABLE `messages_fts` USING fts5(`content`, tokenize = 'trigram remove_diacritics 1');
--> statement-breakpoint
-- A new user message (an AI message starts empty).
CREATE TRIGGER `messages_fts_insert` AFTER INSERT ON `messages` WHEN new.`content` <> '' BEGIN
  INSERT INTO `messages_fts` (rowid, `content`) VALUES (new.rowid, new.`content`);
END;
--> statement-breakpoint
-- An edit, or a reply's text once it is no longer Generating (the status trigger below covers the
-- final write, which lands in the same batch just before the status changes).
CREATE TRIGGER `messages_fts_update` AFTER UPDATE OF `content` ON `messages`
WHEN NOT EXISTS (SELECT 1 FROM `ai_responses` r WHERE r.`ai_message_id` = new.`id` AND r.`status` = 'Generating') BEGIN
  DELETE FROM `messages_fts` WHERE rowid = old.rowid;
  INSERT INTO `messages_fts` (rowid, `content`) SELECT new.rowid, new.`content` WHERE new.`content` <> '';
END;
--> statement-breakpoint
-- A reply finished (Completed or Error): index its final text.
CREATE TRIGGER `messages_fts_reply_finished` AFTER UPDATE OF `status` ON `ai_responses`
WHEN old.`status` = 'Generating' AND new.`status` <> 'Generating' BEGIN
  DELETE FROM `messages_fts` WHERE rowid = (SELECT rowid FROM `messages` WHERE `id` = new.`ai_message_id`);
  INSERT INTO `messages_fts` (rowid, `content`) SELECT rowid, `content` FROM `messages` WHERE `id` = new.`ai_message_id` AND `content` <> '';
END;
--> statement-breakpoint
CREATE TRIGGER `messages_fts_delete` AFTER DELETE ON `messages` BEGIN
  DELETE FROM `messages_fts` WHERE rowid = old.rowid;
END;
