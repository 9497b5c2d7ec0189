"""Migration operations Django does not ship.

Django 5.2 emulates ON DELETE in Python and creates foreign keys without a
database action. SetForeignKeyOnDelete puts the action into PostgreSQL itself,
so rows deleted by raw SQL (or another program) cascade exactly as the ORM does.
"""

from django.db.migrations.operations.base import Operation

_FIND_FK = """
SELECT con.conname
FROM pg_constraint con
JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
WHERE con.contype = 'f' AND con.conrelid = %s::regclass AND att.attname = %s
"""


class SetForeignKeyOnDelete(Operation):
    """Recreate a foreign key with ON DELETE <action> (PostgreSQL only; reversible)."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, table: str, column: str, references: str, action: str, keep_on_reverse: bool = False):
        if action not in ("CASCADE", "SET NULL", "RESTRICT"):
            raise ValueError(f"unsupported ON DELETE action {action!r}")
        self.table, self.column, self.references, self.action = table, column, references, action
        # Django recreates a foreign key (without any action) whenever it alters the
        # field; a migration that does so puts the action back on the way down too.
        self.keep_on_reverse = keep_on_reverse

    def deconstruct(self):
        kwargs = {"table": self.table, "column": self.column, "references": self.references, "action": self.action}
        if self.keep_on_reverse:
            kwargs["keep_on_reverse"] = True
        return self.__class__.__name__, [], kwargs

    def state_forwards(self, app_label, state):
        pass

    def _recreate(self, schema_editor, on_delete: str) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(_FIND_FK, [self.table, self.column])
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"no foreign key on {self.table}.{self.column}")
        qn = schema_editor.quote_name
        name = row[0]
        schema_editor.execute(
            f"ALTER TABLE {qn(self.table)} DROP CONSTRAINT {qn(name)}, "
            f"ADD CONSTRAINT {qn(name)} FOREIGN KEY ({qn(self.column)}) "
            f"REFERENCES {qn(self.references)} (id) {on_delete} DEFERRABLE INITIALLY DEFERRED"
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._recreate(schema_editor, f"ON DELETE {self.action}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._recreate(schema_editor, f"ON DELETE {self.action}" if self.keep_on_reverse else "")

    def describe(self):
        return f"Set ON DELETE {self.action} on {self.table}.{self.column} in the database"

    @property
    def migration_name_fragment(self):
        return f"{self.table}_{self.column}_on_delete"
