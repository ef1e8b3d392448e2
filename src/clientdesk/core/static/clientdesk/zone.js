// The browser's time zone for the staff pages: a cookie the server reads (and checks against
// the zone database) when the user has not chosen a zone in their profile; and
// clientdeskTime(iso), which formats an instant in the zone the page was rendered in, so times a
// script writes match the ones the server wrote.
(function () {
  "use strict";
  const COOKIE = "clientdesk_tz";

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function cookie() {
    const match = document.cookie.match(new RegExp("(?:^|; )" + COOKIE + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function pageZone() {
    return (document.body && document.body.dataset.timeZone) || undefined;
  }

  window.clientdeskTime = function (iso, options) {
    const date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    const format = Object.assign({dateStyle: "medium", timeStyle: "short"}, options || {});
    try {
      return new Intl.DateTimeFormat([], Object.assign({timeZone: pageZone()}, format)).format(date);
    } catch (error) {
      return new Intl.DateTimeFormat([], format).format(date); // a zone this browser lacks
    }
  };

  const zone = browserZone();
  if (!zone) return;
  if (cookie() !== zone) {
    document.cookie = COOKIE + "=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax" +
      (location.protocol === "https:" ? "; secure" : "");
  }
  // Whether two zone names keep the same clock through the year ("UTC" and "Etc/UTC" do).
  function sameClock(first, second) {
    try {
      const options = {year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric"};
      const a = new Intl.DateTimeFormat("en", Object.assign({timeZone: first}, options));
      const b = new Intl.DateTimeFormat("en", Object.assign({timeZone: second}, options));
      const now = Date.now();
      return [0, 1, 2, 3].every(function (quarter) {
        const instant = new Date(now + quarter * 91 * 86400000);
        return a.format(instant) === b.format(instant);
      });
    } catch (error) {
      return true; // a zone this browser does not know: nothing better to show
    }
  }

  // A page rendered before the server knew the browser's zone (the cookie was missing or old)
  // and for a user without a zone of their own: render it again, once per zone and tab.
  document.addEventListener("DOMContentLoaded", function () {
    const body = document.body;
    if (!body || !body.dataset.timeZone || body.dataset.timeZoneSource === "user") return;
    if (cookie() !== zone || sameClock(body.dataset.timeZone, zone)) return;
    const key = "clientdesk-zone-reloaded";
    try {
      if (sessionStorage.getItem(key) === zone) return;
      sessionStorage.setItem(key, zone);
    } catch (error) {
      return; // no storage: no way to make sure this happens once
    }
    location.reload();
  });
})();
