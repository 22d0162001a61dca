-- Existing conversations were straight lines: each message's parent is the one before it by order,
-- and the branch shown is the whole conversation, ending at its last message.
UPDATE `messages` SET `parent_id` = (
	SELECT p.`id` FROM `messages` p
	WHERE p.`conversation_id` = `messages`.`conversation_id` AND p.`order` < `messages`.`order`
	ORDER BY p.`order` DESC LIMIT 1
);--> statement-breakpoint
UPDATE `conversations` SET `current_leaf_id` = (
	SELECT m.`id` FROM `messages` m WHERE m.`conversation_id` = `conversations`.`id` ORDER BY m.`order` DESC LIMIT 1
);
