DROP INDEX `ai_responses_message_id_unique`;--> statement-breakpoint
CREATE INDEX `ai_responses_message` ON `ai_responses` (`message_id`,`id`);--> statement-breakpoint
ALTER TABLE `conversations` ADD `current_leaf_id` text;--> statement-breakpoint
ALTER TABLE `conversations` ADD `leaf_version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `conversations` ADD `forked_from_conversation_id` text;--> statement-breakpoint
ALTER TABLE `conversations` ADD `forked_from_message_id` text;--> statement-breakpoint
ALTER TABLE `messages` ADD `parent_id` text REFERENCES messages(id);--> statement-breakpoint
CREATE INDEX `messages_conversation_tree` ON `messages` (`conversation_id`,`order`,`parent_id`,`is_deleted`,`id`);