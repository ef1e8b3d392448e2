"""The staff user's own profile page: the time zone their pages show times in."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from clientdesk.accounts.requests import StaffRequest
from clientdesk.accounts.services import user_timezone_set
from clientdesk.core.errors import ApplicationError
from clientdesk.core.gate import authenticated
from clientdesk.core.local_time import browser_zone
from clientdesk.core.zones import zone_groups


@authenticated
@require_http_methods(["GET", "POST"])
def profile_page(request: StaffRequest) -> HttpResponse:
    problem: ApplicationError | None = None
    chosen = request.user.timezone
    if request.method == "POST":
        chosen = request.POST.get("timezone", "")
        try:
            user_timezone_set(user=request.user, zone=chosen)
        except ApplicationError as failure:
            problem = failure
        else:
            messages.success(request, "Profile saved.")
            return redirect("profile")
    browser = browser_zone(request)
    context = {
        "chosen": chosen,
        "zones": zone_groups(),
        "browser_zone": browser.key if browser else None,
        "error": problem,
    }
    return render(
        request, "accounts/profile.html", context, status=problem.status if problem else 200
    )
