/**
 * Adds a column to a table of a Durable Object's SQLite that objects created before it exist
 * without. SQLite has no ADD COLUMN IF NOT EXISTS: an existing column answers "duplicate column".
 */
export function addColumnIfMissing(sql: SqlStorage, table: string, column: string, declaration: string): void {
  try {
    sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${declaration}`);
  } catch (error) {
    if (!String(error).includes("duplicate column")) throw error;
  }
}
