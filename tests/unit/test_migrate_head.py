"""The revision a start compares the schema with is the newest of migrations/versions."""

from importlib import resources

from alembic.config import Config
from alembic.script import ScriptDirectory

from connector.ops import migrate


def test_head_is_the_newest_revision():
    config = Config()
    config.set_main_option("script_location", str(resources.files("connector.migrations")))
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD
