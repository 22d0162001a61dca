ALTER TABLE `ai_responses` ADD `max_output_tokens` integer;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `provider` text;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `attempts` text;--> statement-breakpoint
ALTER TABLE `ai_responses` ADD `cost_usd` real;--> statement-breakpoint
ALTER TABLE `conversations` ADD `max_output_tokens` integer;--> statement-breakpoint
ALTER TABLE `usage_daily` ADD `cost_usd` real DEFAULT 0 NOT NULL;