-- Full-text search, second layout: a word index for everything, and a trigram index only for
-- messages in scripts written without spaces between words.
--
-- The trigram index of 0001 made every query read the position lists of its trigrams, and the
-- trigrams of ordinary words are in nearly every message ("top", "opi", "pic" of "topic123"),
-- then joined each match to `messages` and `conversations` to keep the caller's visible ones:
-- thousands of lookups for a common word. Now:
-- * `message_words` (unicode61, diacritics folded) holds exactly the messages search may show:
--   not soft-deleted, with text, not a reply still Generating, in an Active conversation. The
--   triggers below add and remove rows as that changes. Its `owner` column holds the user id
--   without hyphens (one token), so a query is `owner : "<id>" AND content : …`: the index alone
--   finds, counts and ranks a user's matches, with no join until the page's ten rows.
-- * `message_trigrams` (trigram) holds the same messages, but only those containing Thai, Lao,
--   Myanmar, Khmer, Japanese kana, CJK ideographs or Hangul: text a word tokenizer cannot split.
--   A query with such characters searches it (any run of 3+ characters matches). The GLOB classes
--   below and NO_SPACE_SCRIPT in src/routes/search.ts list the same ranges (in three patterns:
--   D1 refuses a GLOB pattern longer than 50 bytes).
-- Both keep their own copy of the text, which snippet() reads.
DROP TRIGGER `messages_fts_insert`;
--> statement-breakpoint
DROP TRIGGER `messages_fts_update`;
--> statement-breakpoint
DROP TRIGGER `messages_fts_reply_finished`;
--> statement-breakpoint
DROP TRIGGER `messages_fts_delete`;
--> statement-breakpoint
DROP TABLE `messages_fts`;
--> statement-breakpoint
CREATE VIRTUAL TABLE `message_words` USING fts5(`content`, `owner`, tokenize = 'unicode61 remove_diacritics 2');
--> statement-breakpoint
CREATE VIRTUAL TABLE `message_trigrams` USING fts5(`content`, tokenize = 'trigram remove_diacritics 1');
--> statement-breakpoint
-- A new message: a user message (an AI message starts empty), or a copy (fork, a moved shard).
CREATE TRIGGER `message_search_insert` AFTER INSERT ON `messages`
WHEN new.`content` <> '' AND new.`is_deleted` = 0
  AND EXISTS (SELECT 1 FROM `conversations` c WHERE c.`id` = new.`conversation_id` AND c.`status` = 'Active')
  AND NOT EXISTS (SELECT 1 FROM `ai_responses` r WHERE r.`ai_message_id` = new.`id` AND r.`status` = 'Generating') BEGIN
  INSERT INTO `message_words` (rowid, `content`, `owner`) VALUES (new.rowid, new.`content`, replace(new.`user_id`, '-', ''));
  INSERT INTO `message_trigrams` (rowid, `content`) SELECT new.rowid, new.`content`
    WHERE (new.`content` GLOB '*[฀-໿က-႟ក-៿]*' OR new.`content` GLOB '*[぀-ヿ㐀-鿿]*' OR new.`content` GLOB '*[가-힯豈-﫿]*');
END;
--> statement-breakpoint
-- An edit, a soft delete or a restore; a reply's text while it is Generating stays out (the
-- status trigger below indexes it when it finishes, in the same batch).
CREATE TRIGGER `message_search_update` AFTER UPDATE OF `content`, `is_deleted` ON `messages` BEGIN
  DELETE FROM `message_words` WHERE rowid = old.rowid;
  DELETE FROM `message_trigrams` WHERE rowid = old.rowid;
  INSERT INTO `message_words` (rowid, `content`, `owner`) SELECT new.rowid, new.`content`, replace(new.`user_id`, '-', '')
    WHERE new.`content` <> '' AND new.`is_deleted` = 0
      AND EXISTS (SELECT 1 FROM `conversations` c WHERE c.`id` = new.`conversation_id` AND c.`status` = 'Active')
      AND NOT EXISTS (SELECT 1 FROM `ai_responses` r WHERE r.`ai_message_id` = new.`id` AND r.`status` = 'Generating');
  INSERT INTO `message_trigrams` (rowid, `content`) SELECT rowid, `content` FROM `message_words`
    WHERE rowid = new.rowid AND (`content` GLOB '*[฀-໿က-႟ក-៿]*' OR `content` GLOB '*[぀-ヿ㐀-鿿]*' OR `content` GLOB '*[가-힯豈-﫿]*');
END;
--> statement-breakpoint
-- A reply finished (Completed or Error): index its final text.
CREATE TRIGGER `message_search_reply_finished` AFTER UPDATE OF `status` ON `ai_responses`
WHEN old.`status` = 'Generating' AND new.`status` <> 'Generating' BEGIN
  DELETE FROM `message_words` WHERE rowid = (SELECT rowid FROM `messages` WHERE `id` = new.`ai_message_id`);
  DELETE FROM `message_trigrams` WHERE rowid = (SELECT rowid FROM `messages` WHERE `id` = new.`ai_message_id`);
  INSERT INTO `message_words` (rowid, `content`, `owner`) SELECT m.rowid, m.`content`, replace(m.`user_id`, '-', '')
    FROM `messages` m JOIN `conversations` c ON c.`id` = m.`conversation_id`
    WHERE m.`id` = new.`ai_message_id` AND m.`content` <> '' AND m.`is_deleted` = 0 AND c.`status` = 'Active';
  INSERT INTO `message_trigrams` (rowid, `content`) SELECT w.rowid, w.`content` FROM `messages` m JOIN `message_words` w ON w.rowid = m.rowid
    WHERE m.`id` = new.`ai_message_id` AND (w.`content` GLOB '*[฀-໿က-႟ក-៿]*' OR w.`content` GLOB '*[぀-ヿ㐀-鿿]*' OR w.`content` GLOB '*[가-힯豈-﫿]*');
END;
--> statement-breakpoint
-- A conversation deleted (soft) or restored: its messages leave or rejoin the indexes.
CREATE TRIGGER `message_search_conversation_status` AFTER UPDATE OF `status` ON `conversations`
WHEN old.`status` <> new.`status` BEGIN
  DELETE FROM `message_words` WHERE rowid IN (SELECT rowid FROM `messages` WHERE `conversation_id` = new.`id`);
  DELETE FROM `message_trigrams` WHERE rowid IN (SELECT rowid FROM `messages` WHERE `conversation_id` = new.`id`);
  INSERT INTO `message_words` (rowid, `content`, `owner`) SELECT m.rowid, m.`content`, replace(m.`user_id`, '-', '')
    FROM `messages` m
    WHERE new.`status` = 'Active' AND m.`conversation_id` = new.`id` AND m.`content` <> '' AND m.`is_deleted` = 0
      AND NOT EXISTS (SELECT 1 FROM `ai_responses` r WHERE r.`ai_message_id` = m.`id` AND r.`status` = 'Generating');
  INSERT INTO `message_trigrams` (rowid, `content`) SELECT w.rowid, w.`content` FROM `messages` m JOIN `message_words` w ON w.rowid = m.rowid
    WHERE new.`status` = 'Active' AND m.`conversation_id` = new.`id` AND (w.`content` GLOB '*[฀-໿က-႟ក-៿]*' OR w.`content` GLOB '*[぀-ヿ㐀-鿿]*' OR w.`content` GLOB '*[가-힯豈-﫿]*');
END;
--> statement-breakpoint
CREATE TRIGGER `message_search_delete` AFTER DELETE ON `messages` BEGIN
  DELETE FROM `message_words` WHERE rowid = old.rowid;
  DELETE FROM `message_trigrams` WHERE rowid = old.rowid;
END;
--> statement-breakpoint
-- The messages already stored.
INSERT INTO `message_words` (rowid, `content`, `owner`) SELECT m.rowid, m.`content`, replace(m.`user_id`, '-', '')
FROM `messages` m JOIN `conversations` c ON c.`id` = m.`conversation_id`
WHERE m.`content` <> '' AND m.`is_deleted` = 0 AND c.`status` = 'Active'
  AND NOT EXISTS (SELECT 1 FROM `ai_responses` r WHERE r.`ai_message_id` = m.`id` AND r.`status` = 'Generating');
--> statement-breakpoint
INSERT INTO `message_trigrams` (rowid, `content`) SELECT rowid, `content` FROM `message_words`
WHERE (`content` GLOB '*[฀-໿က-႟ក-៿]*' OR `content` GLOB '*[぀-ヿ㐀-鿿]*' OR `content` GLOB '*[가-힯豈-﫿]*');
