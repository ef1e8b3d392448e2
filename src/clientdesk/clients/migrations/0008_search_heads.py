from django.db import migrations

from clientdesk.clients import search_index


class Migration(migrations.Migration):
    dependencies = [("clients", "0007_client_timezone_consent")]

    # PostgreSQL: for every trigram, where in page order its first client is (a lower bound
    # kept by triggers), so a search walks from there (clients/search_index.py).
    operations = [
        migrations.RunPython(search_index.install_heads, search_index.uninstall_heads),
    ]
