CREATE TABLE `summaries` (
	`id` text PRIMARY KEY NOT NULL,
	`conversation_id` text NOT NULL,
	`through_message_id` text NOT NULL,
	`through_order` integer NOT NULL,
	`content` text NOT NULL,
	`tokens` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`conversation_id`) REFERENCES `conversations`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`through_message_id`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `summaries_conversation_through` ON `summaries` (`conversation_id`,`through_message_id`);--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `finish_reason` text;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `context_first_order` integer;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `context_messages` integer;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `context_summary_through_order` integer;--> statement-breakpoint
ALTER TABLE `messages` ADD `tokens` integer;--> statement-breakpoint
-- A stored reply's size is what the provider counted as its completion.
UPDATE `messages` SET `tokens` = (SELECT r.`completion_tokens` FROM `ai_responses` r WHERE r.`ai_message_id` = `messages`.`id`) WHERE `sender` = 'ai';
