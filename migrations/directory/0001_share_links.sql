CREATE TABLE `share_links` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`virtual_shard` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
