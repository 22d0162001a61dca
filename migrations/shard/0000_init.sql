CREATE TABLE `ai_responses` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`message_id` text NOT NULL,
	`ai_message_id` text NOT NULL,
	`status` text DEFAULT 'Generating' NOT NULL,
	`error_code` text,
	`error_message` text,
	`model` text NOT NULL,
	`prompt_tokens` integer,
	`completion_tokens` integer,
	`total_tokens` integer,
	`finish_reason` text,
	`context_first_order` integer,
	`context_messages` integer,
	`context_summary_through_order` integer,
	`feedback_rating` text,
	`feedback_comment` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`first_token_at` text,
	`completed_at` text,
	FOREIGN KEY (`message_id`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`ai_message_id`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `ai_responses_ai_message_id_unique` ON `ai_responses` (`ai_message_id`);--> statement-breakpoint
CREATE INDEX `ai_responses_user_status` ON `ai_responses` (`user_id`,`status`);--> statement-breakpoint
CREATE INDEX `ai_responses_message` ON `ai_responses` (`message_id`,`id`);--> statement-breakpoint
CREATE TABLE `conversations` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`title` text,
	`title_search` text,
	`status` text DEFAULT 'Active' NOT NULL,
	`model_version` text NOT NULL,
	`system_prompt` text,
	`current_leaf_id` text,
	`leaf_version` integer DEFAULT 0 NOT NULL,
	`forked_from_conversation_id` text,
	`forked_from_message_id` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `conversations_user_status_updated` ON `conversations` (`user_id`,`status`,`updated_at`,`id`);--> statement-breakpoint
CREATE INDEX `conversations_user_created` ON `conversations` (`user_id`,`created_at`,`id`);--> statement-breakpoint
CREATE TABLE `messages` (
	`id` text PRIMARY KEY NOT NULL,
	`conversation_id` text NOT NULL,
	`user_id` text NOT NULL,
	`sender` text NOT NULL,
	`content` text NOT NULL,
	`timestamp` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`order` integer NOT NULL,
	`is_edited` integer DEFAULT false NOT NULL,
	`is_deleted` integer DEFAULT false NOT NULL,
	`reply_to` text,
	`parent_id` text,
	`tokens` integer,
	FOREIGN KEY (`conversation_id`) REFERENCES `conversations`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`reply_to`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`parent_id`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `messages_conversation_order` ON `messages` (`conversation_id`,`order`);--> statement-breakpoint
CREATE INDEX `messages_conversation_tree` ON `messages` (`conversation_id`,`order`,`parent_id`,`is_deleted`,`id`);--> statement-breakpoint
CREATE INDEX `messages_user_timestamp` ON `messages` (`user_id`,`timestamp`,`id`,`is_deleted`);--> statement-breakpoint
CREATE TABLE `shares` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`conversation_id` text NOT NULL,
	`user_id` text NOT NULL,
	`leaf_message_id` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`revoked_at` text,
	FOREIGN KEY (`conversation_id`) REFERENCES `conversations`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`leaf_message_id`) REFERENCES `messages`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `shares_conversation` ON `shares` (`conversation_id`);--> statement-breakpoint
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
CREATE TABLE `usage_daily` (
	`user_id` text NOT NULL,
	`day` text NOT NULL,
	`tokens` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`user_id`, `day`)
);
