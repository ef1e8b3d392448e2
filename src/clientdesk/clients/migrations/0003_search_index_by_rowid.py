from django.db import migrations

from clientdesk.clients import search_index


class Migration(migrations.Migration):
    dependencies = [("clients", "0002_search_index")]

    # Rebuilds the SQLite index keyed by rowid (edits no longer scan it); a no-op elsewhere.
    operations = [migrations.RunPython(search_index.install, migrations.RunPython.noop)]
