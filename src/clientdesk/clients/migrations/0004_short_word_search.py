from django.db import migrations

from clientdesk.clients import search_index


class Migration(migrations.Migration):
    dependencies = [("clients", "0003_search_index_by_rowid")]

    # PostgreSQL: adds the pair index for one- and two-character words. SQLite: rebuilds the
    # FTS table over the text plus two spaces, with its vocabulary table.
    operations = [migrations.RunPython(search_index.install, migrations.RunPython.noop)]
