ALTER TABLE `ai_responses` ADD `reasoning_tokens` integer;--> statement-breakpoint
ALTER TABLE `messages` ADD `parts` text;