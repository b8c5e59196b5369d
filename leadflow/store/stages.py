"""The triggers that keep `lead_stages` exact: every status a lead enters is a row, written by the database in the
statement that changed `leads.status`, whichever service (or a future one) ran it.

The time is the lead's own: `created_at` for the status it arrived in, `updated_at` for each change, which every
writer sets to the instant of the change (the clock the service was given, never the database's). The owner and
team are the lead's as the statement leaves them.

A migration that rebuilds `leads` on SQLite (alembic's batch mode copies the table) drops its triggers: such a
migration must call `create_stage_triggers` again.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

_COLUMNS = "lead_id, status, previous, entered_at, manager_id, team_id"

_SQLITE = (
    f"""CREATE TRIGGER leads_stage_insert AFTER INSERT ON leads
BEGIN
  INSERT INTO lead_stages ({_COLUMNS}) VALUES (NEW.id, NEW.status, NULL, NEW.created_at, NEW.manager_id, NEW.team_id);
END""",
    f"""CREATE TRIGGER leads_stage_update AFTER UPDATE OF status ON leads WHEN OLD.status IS NOT NEW.status
BEGIN
  UPDATE lead_stages SET left_at = NEW.updated_at WHERE lead_id = NEW.id AND left_at IS NULL;
  INSERT INTO lead_stages ({_COLUMNS})
  VALUES (NEW.id, NEW.status, OLD.status, NEW.updated_at, NEW.manager_id, NEW.team_id);
END""",
)

_POSTGRESQL = (
    f"""CREATE FUNCTION leadflow_lead_stage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO lead_stages ({_COLUMNS})
    VALUES (NEW.id, NEW.status, NULL, NEW.created_at, NEW.manager_id, NEW.team_id);
  ELSE
    UPDATE lead_stages SET left_at = NEW.updated_at WHERE lead_id = NEW.id AND left_at IS NULL;
    INSERT INTO lead_stages ({_COLUMNS})
    VALUES (NEW.id, NEW.status, OLD.status, NEW.updated_at, NEW.manager_id, NEW.team_id);
  END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER leads_stage_insert AFTER INSERT ON leads FOR EACH ROW EXECUTE FUNCTION leadflow_lead_stage()",
    """CREATE TRIGGER leads_stage_update AFTER UPDATE OF status ON leads FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION leadflow_lead_stage()""",
)

_DROP = {
    "sqlite": ("DROP TRIGGER IF EXISTS leads_stage_insert", "DROP TRIGGER IF EXISTS leads_stage_update"),
    "postgresql": (
        "DROP TRIGGER IF EXISTS leads_stage_insert ON leads",
        "DROP TRIGGER IF EXISTS leads_stage_update ON leads",
        "DROP FUNCTION IF EXISTS leadflow_lead_stage()",
    ),
}


def create_stage_triggers(conn: Connection) -> None:
    for statement in _POSTGRESQL if conn.dialect.name == "postgresql" else _SQLITE:
        conn.exec_driver_sql(statement)


def drop_stage_triggers(conn: Connection) -> None:
    """For a bulk load that writes `lead_stages` itself (bench/reports.py), and for the migration's downgrade."""
    for statement in _DROP["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]:
        conn.exec_driver_sql(statement)
