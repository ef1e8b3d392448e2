"""Personalisation in a real browser: the Templates page, the template picker, "Insert variable",
the live preview that gates "Send", and client data shown as text (docs/TEMPLATES.md).

What the preview shows is compared with what is stored: "what the client receives is exactly
what the preview showed, or nothing is sent".
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message, MessageTemplate
from clientdesk.messaging.services.templates import SetVariant, template_change, template_create
from tests.e2e.helpers import (
    SendTracker,
    actions_button,
    message_box,
    open_send_panel,
    row_for,
    send_button,
    sent_items,
    stored,
    toasts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Login = Callable[[User], Page]
MakeStaff = Callable[..., User]
MakeClient = Callable[..., Client]
Screenshot = Callable[[Any, str], Any]

NAME = "Documents needed"
EN_BODY = (
    'Hi {{ nickname | default: "there" }}! {{ firstName }}, please upload your ID. '
    "— {{ sender.fullName }}"
)
DE_BODY = (
    'Hallo {{ nickname | default: "zusammen" }}! {{ firstName }}, bitte laden Sie Ihren '
    "Ausweis hoch. — {{ sender.fullName }}"
)
XSS_NAME = '<img src=x onerror="window.__xss=1">'
XSS_BODY = "<script>window.__xss=2</script>"


@pytest.fixture
def manager(make_staff: MakeStaff) -> User:
    return make_staff("Manager", first_name="Mia", last_name="Manager")


@pytest.fixture
def german(make_client: MakeClient) -> Client:
    return make_client(
        first_name="Jürgen", last_name="Weiß", language="de", attributes={"nickname": "Jo"}
    )


@pytest.fixture
def english(make_client: MakeClient) -> Client:
    return make_client(first_name="Ana", last_name="García", language="en")


def compose_preview(dialog: Locator) -> Locator:
    return dialog.locator("#compose-preview")


def preview_text(preview: Locator) -> Locator:
    """The rendered text inside a preview box (panel or template editor)."""
    return preview.locator(".preview-body")


def expect_sendable(dialog: Locator) -> None:
    expect(compose_preview(dialog).locator("[data-preview-ok=true]")).to_have_count(1)
    expect(send_button(dialog)).to_be_enabled()


# --- The Templates page ------------------------------------------------------------------


def test_manager_creates_a_template_with_a_fallback_then_adds_a_german_variant(
    page: Page,
    login: Login,
    manager: User,
    german: Client,
    english: Client,
    screenshot: Screenshot,
) -> None:
    login(manager)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()
    page.get_by_role("link", name="New template").click()
    expect(page.get_by_role("heading", name="New template", level=1)).to_be_visible()

    page.get_by_label("Name").fill(NAME)
    expect(page.get_by_label("Language")).to_have_value("en")
    page.get_by_label("Body").fill(EN_BODY)

    # The live preview, for a client chosen by search: the fallback fills in for Ana, who
    # has no nickname; Jürgen's own nickname is used.
    preview = page.locator("#preview")
    page.get_by_label("Preview for client").fill("García")
    chooser = page.get_by_label("Client to preview for")
    expect(chooser.locator("option")).to_have_count(1)
    expect(preview_text(preview)).to_have_text(
        "Hi there! Ana, please upload your ID. — Mia Manager"
    )
    expect(preview).to_contain_text("What Ana García receives")
    page.get_by_label("Preview for client").fill("")
    expect(chooser.locator("option")).to_have_count(2)
    chooser.select_option(label=f"Jürgen Weiß · de · {german.email}")
    expect(preview_text(preview)).to_have_text(
        "Hi Jo! Jürgen, please upload your ID. — Mia Manager"
    )
    screenshot(page, "template-editor-preview")

    # The preview follows the body as it is typed.
    page.get_by_label("Body").fill("Hi {{ nickname }} and {{ tier }}")
    expect(preview.get_by_role("alert")).to_contain_text("{{tier}}")
    expect(preview.get_by_role("alert")).not_to_contain_text("{{nickname}}")
    page.get_by_label("Body").fill(EN_BODY)
    expect(preview_text(preview)).to_have_text(
        "Hi Jo! Jürgen, please upload your ID. — Mia Manager"
    )

    page.get_by_role("button", name="Create template").click()
    expect(toasts(page, "status")).to_contain_text(f"Template “{NAME}” created (version 1).")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{NAME} v1")
    template = MessageTemplate.objects.get(name=NAME)
    [v1] = template.versions.all()
    assert (v1.version, v1.default_language, v1.variants) == (1, "en", {"en": EN_BODY})
    assert v1.author == manager

    # A German variant: pick the language, write its text, save as a new version.
    page.get_by_label("Language").select_option("de")
    page.get_by_label("Body").fill(DE_BODY)
    expect(preview_text(preview)).to_contain_text("Hallo")
    page.get_by_role("button", name="Save as new version").click()
    expect(toasts(page, "status")).to_contain_text(f"Saved “{NAME}” as version 2.")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{NAME} v2")
    expect(page).to_have_url(re.compile(r"\?language=de$"))
    expect(page.get_by_label("Language")).to_have_value("de")
    expect(page.get_by_label("Body")).to_have_value(DE_BODY)
    versions = page.get_by_role("region", name="Versions")
    expect(versions.get_by_role("listitem")).to_have_count(2)
    expect(versions.get_by_role("listitem").first).to_contain_text("v2 by Mia Manager")
    # The order of the variants is not specified (PostgreSQL's jsonb sorts the keys).
    expect(versions.get_by_role("listitem").first).to_contain_text(
        re.compile(r"(en, de|de, en) \(default en\)")
    )

    v2 = template.versions.get(version=2)
    assert v2.default_language == "en"
    assert v2.variants == {"en": EN_BODY, "de": DE_BODY}
    assert template.versions.get(version=1).variants == {"en": EN_BODY}  # never changed

    # The list shows the current version and both languages.
    page.get_by_role("link", name="Templates").first.click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=NAME, exact=True))
    expect(row).to_contain_text("v2")
    expect(row.locator(".badge")).to_have_count(2)
    assert sorted(row.locator(".badge").all_text_contents()) == ["de", "en"]
    expect(row.locator(".badge-strong")).to_have_text("en")  # the default language


# --- The template picker in the panel ----------------------------------------------------


@pytest.fixture
def two_language_template(manager: User) -> MessageTemplate:
    v1 = template_create(author=manager, name=NAME, body=EN_BODY, language="en")
    v2 = template_change(
        author=manager, template_id=v1.template_id, actions=[SetVariant(DE_BODY, "de")]
    )
    assert v2.version == 2
    return v1.template


def test_agent_sends_the_template_in_each_clients_language_exactly_as_previewed(
    page: Page,
    login: Login,
    agent_user: User,
    german: Client,
    english: Client,
    two_language_template: MessageTemplate,
) -> None:
    login(agent_user)
    tracker = SendTracker(page)
    expected = {
        german: (
            "de",
            "Hallo Jo! Jürgen, bitte laden Sie Ihren Ausweis hoch. — Alex Agent",
            {"nickname": "Jo", "firstName": "Jürgen", "sender.fullName": "Alex Agent"},
            "German (de) variant — the client's language is de.",
        ),
        english: (
            "en",
            "Hi there! Ana, please upload your ID. — Alex Agent",
            {"firstName": "Ana", "sender.fullName": "Alex Agent"},
            "English (en) variant — the client's language is en.",
        ),
    }
    for client, (language, text, variables, reason) in expected.items():
        dialog = open_send_panel(page, client)
        expect(send_button(dialog)).to_be_disabled()  # nothing typed or chosen yet
        picker = dialog.get_by_placeholder("Use a template (search)…")
        picker.fill(NAME)
        expect(dialog.locator("#template-id")).to_have_value(str(two_language_template.id))
        # The template's text for this client lands in the box, ready to send or to edit.
        expect(message_box(dialog)).to_have_value(text)
        expect(message_box(dialog)).to_be_editable()

        preview = compose_preview(dialog)
        expect(preview_text(preview)).to_have_text(text)
        expect(preview.locator(".template-note")).to_have_text(f"Template “{NAME}” v2.")
        expect(preview.locator(".variant-note")).to_have_text(reason)
        expect_sendable(dialog)
        shown = preview_text(preview).text_content()

        send_button(dialog).click()
        expect(
            toasts(page, "status").filter(has_text=f"Sent to {client.full_name}'s cabinet.")
        ).to_be_visible()
        expect(sent_items(dialog)).to_have_count(1)
        expect(sent_items(dialog).first.locator(".message-body")).to_have_text(text)
        expect(sent_items(dialog).first).to_contain_text("template v2")
        # Ready for the next message: the picker and the box are reset.
        expect(picker).to_have_value("")
        expect(message_box(dialog)).to_be_enabled()

        [message] = stored(client)
        assert message.body == shown == text, "what was sent differs from the preview"
        assert message.template_id == two_language_template.id
        assert message.template_version == 2
        assert message.template_language == language
        assert not message.template_edited
        assert message.variables == variables
        assert message.source == (DE_BODY if language == "de" else EN_BODY)
        assert message.sender == agent_user

        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
    assert tracker.wait_until_idle() == 2
    assert Message.objects.count() == 2


def test_agent_edits_a_templates_text_before_sending_and_the_message_says_so(
    page: Page,
    login: Login,
    agent_user: User,
    make_client: MakeClient,
    two_language_template: MessageTemplate,
    screenshot: Screenshot,
) -> None:
    """A French client gets the English default variant (there is no French one), and the panel
    says why; the agent changes the text; the message keeps the template, its version and that
    it was edited."""
    client = make_client(first_name="Léa", last_name="Roux", language="fr")
    login(agent_user)
    dialog = open_send_panel(page, client)
    box = message_box(dialog)
    box.fill("A draft of my own")
    dialog.get_by_placeholder("Use a template (search)…").fill(NAME)
    unedited = "Hi there! Léa, please upload your ID. — Alex Agent"
    expect(box).to_have_value(unedited)
    preview = compose_preview(dialog)
    expect(preview.locator(".variant-note")).to_have_text(
        "English (en) variant, the template's default — no French (fr) variant exists for this "
        "template; the client's language is fr."
    )
    screenshot(page, "template-chosen")

    box.fill(unedited.replace("your ID.", "your ID by Friday, {{ firstName }}."))
    expect(preview.locator(".template-note")).to_contain_text(f"Template “{NAME}” v2, edited")
    expect(preview_text(preview)).to_have_text(
        "Hi there! Léa, please upload your ID by Friday, Léa. — Alex Agent"
    )
    expect_sendable(dialog)
    screenshot(page, "template-edited")
    send_button(dialog).click()
    expect(toasts(page, "status").filter(has_text="Sent to Léa Roux's cabinet.")).to_be_visible()
    expect(sent_items(dialog).first).to_contain_text("template v2, edited")
    # The draft set aside for the template is back for the next message.
    expect(box).to_have_value("A draft of my own")

    [message] = stored(client)
    assert message.body == "Hi there! Léa, please upload your ID by Friday, Léa. — Alex Agent"
    assert message.variables == {"firstName": "Léa"}  # the edited text is rendered as typed
    assert (message.template_id, message.template_version, message.template_language) == (
        two_language_template.id,
        2,
        "en",
    )
    assert message.template_edited


def test_clearing_an_unedited_template_gives_the_box_back_to_the_draft(
    page: Page,
    login: Login,
    agent_user: User,
    german: Client,
    two_language_template: MessageTemplate,
) -> None:
    login(agent_user)
    dialog = open_send_panel(page, german)
    box = message_box(dialog)
    box.fill("Mein Entwurf")
    picker = dialog.get_by_placeholder("Use a template (search)…")
    picker.fill(NAME)
    expect(box).to_have_value(re.compile(r"^Hallo Jo!"))
    picker.fill("")
    expect(box).to_have_value("Mein Entwurf")
    expect(dialog.locator("#template-id")).to_have_value("")


# --- Insert variable ---------------------------------------------------------------------


def test_insert_variable_menu_puts_the_variable_at_the_caret_and_the_preview_fills_it(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    box.fill("Hello ")

    dialog.get_by_role("button", name="Insert variable").click()
    menu = dialog.get_by_role("menu", name="Variables")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("menuitem", name="firstName — Client's first name")).to_be_focused()
    menu.get_by_role("menuitem", name="firstName — Client's first name").click()
    expect(menu).to_be_hidden()
    expect(box).to_have_value("Hello {{firstName}}")
    expect(box).to_be_focused()
    box.press_sequentially(", welcome aboard.")
    expect(box).to_have_value("Hello {{firstName}}, welcome aboard.")

    expect(preview_text(compose_preview(dialog))).to_have_text("Hello Zoë, welcome aboard.")
    expect_sendable(dialog)
    send_button(dialog).click()
    expect(toasts(page, "status").filter(has_text="Sent to Zoë Müller's cabinet.")).to_be_visible()
    expect(sent_items(dialog).first.locator(".message-body")).to_have_text(
        "Hello Zoë, welcome aboard."
    )
    [message] = stored(client_obj)
    assert message.body == "Hello Zoë, welcome aboard."
    assert message.source == "Hello {{firstName}}, welcome aboard."
    assert message.variables == {"firstName": "Zoë"}

    # Closing the panel puts focus back on the Actions button that opened it, also after the
    # Insert variable menu was used inside the panel.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(actions_button(page, client_obj)).to_be_focused(timeout=10_000)


# --- A variable the client has no value for --------------------------------------------


def test_unknown_variable_is_named_in_the_preview_and_send_is_disabled(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    tracker = SendTracker(page)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    box.fill("Hi {{ nickname }}")

    problem = compose_preview(dialog).get_by_role("alert")
    expect(problem).to_contain_text("Cannot be sent as written.")
    expect(problem).to_contain_text("unknown variable {{nickname}}")
    expect(send_button(dialog)).to_be_disabled()
    expect(send_button(dialog)).to_have_attribute("title", re.compile(r"\{\{nickname\}\}"))

    # Ctrl+Enter does not get round the disabled button.
    box.press("Control+Enter")
    page.wait_for_timeout(300)
    assert tracker.wait_until_idle() == 0
    assert Message.objects.count() == 0
    expect(box).to_have_value("Hi {{ nickname }}")

    # A fallback fixes it, and Send comes back.
    box.fill('Hi {{ nickname | default: "there" }}')
    expect(preview_text(compose_preview(dialog))).to_have_text("Hi there")
    expect_sendable(dialog)
    assert Message.objects.count() == 0


# --- Client-supplied text is shown as text ---------------------------------------------


def test_markup_in_client_data_and_messages_is_shown_as_literal_text(
    page: Page,
    login: Login,
    manager: User,
    make_client: MakeClient,
    screenshot: Screenshot,
) -> None:
    client = make_client(first_name=XSS_NAME, last_name="Doe")
    full_name = client.full_name
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def assert_nothing_ran() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert not page.evaluate(
            "Array.from(document.scripts).some(s => s.textContent.includes('__xss'))"
        )
        assert dialogs == []

    login(manager)
    # The list.
    link = row_for(page, client).get_by_role("link", name=full_name, exact=True)
    expect(link).to_have_text(full_name)
    assert_nothing_ran()

    # The panel, its preview (ok and failing) and the sent list.
    dialog = open_send_panel(page, client)
    expect(dialog.locator(".client-name")).to_have_text(full_name)
    expect(dialog.locator("#message-help")).to_contain_text(XSS_NAME)
    box = message_box(dialog)
    box.fill("{{ nickname }}")
    expect(compose_preview(dialog).get_by_role("alert")).to_contain_text(
        f"attribute of {full_name} has that name"
    )
    box.fill(XSS_BODY + " Hi {{firstName}}")
    rendered = f"{XSS_BODY} Hi {XSS_NAME}"
    expect(preview_text(compose_preview(dialog))).to_have_text(rendered)
    expect(compose_preview(dialog)).to_contain_text(f"What {full_name} receives")
    assert_nothing_ran()
    send_button(dialog).click()
    expect(
        toasts(page, "status").filter(has_text=f"Sent to {full_name}'s cabinet.")
    ).to_be_visible()
    expect(sent_items(dialog).first.locator(".message-body")).to_have_text(rendered)
    screenshot(page, "panel")
    assert_nothing_ran()
    [message] = stored(client)
    assert message.body == rendered

    # The details drawer and its Activity log.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    link.click()
    drawer = page.get_by_role("dialog", name=full_name)
    expect(drawer).to_be_visible()
    expect(drawer.get_by_role("heading", level=2)).to_have_text(full_name)
    activity = drawer.get_by_role("region", name="Activity log")
    expect(activity.locator(".message-body")).to_have_text(rendered)
    assert_nothing_ran()
    page.keyboard.press("Escape")

    # The template editor's preview and client chooser.
    page.goto("/templates/new/")
    page.get_by_label("Body").fill(XSS_BODY + " {{ fullName }}")
    page.get_by_label("Preview for client").fill("Doe")
    expect(page.get_by_label("Client to preview for").locator("option")).to_have_text(
        re.compile("^" + re.escape(full_name))
    )
    expect(preview_text(page.locator("#preview"))).to_have_text(f"{XSS_BODY} {full_name}")
    assert_nothing_ran()
