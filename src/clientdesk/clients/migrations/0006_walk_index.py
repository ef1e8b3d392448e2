from django.db import migrations

from clientdesk.clients import search_index


class Migration(migrations.Migration):
    dependencies = [("clients", "0005_client_is_active")]

    # Both databases: the walk index (page order with search_text beside it). PostgreSQL: the
    # exact short-word array index replaces the pair-words trigram index.
    operations = [migrations.RunPython(search_index.install_walk, migrations.RunPython.noop)]
