// The dl layout's "More photos" button: each click fetches the next batch of figures (an HTML fragment) and
// appends it to the gallery; the button goes away when nothing is left and div.shots gets the class "complete".
// A plain HTTP fetch of the page sees the first batch only (see SITE.md, "Layout dl").
(function () {
  "use strict";
  var button = document.querySelector("button.more-photos");
  var shots = document.querySelector("div.shots");
  if (!button || !shots) return;

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // The site's faults (5xx, 429, truncated bodies) hit at most two attempts of a URL: retry a few times.
  function fetchText(url, attempt) {
    return fetch(url, { headers: { "Accept": "text/html" } }).then(function (r) {
      if (!r.ok) {
        var err = new Error("HTTP " + r.status);
        err.retryAfter = parseFloat(r.headers.get("Retry-After")) || 0;
        throw err;
      }
      return r.text();
    }).catch(function (err) {
      if (attempt >= 4) throw err;
      var wait = Math.min(3000, err.retryAfter ? err.retryAfter * 1000 : 300 * attempt);
      return sleep(wait).then(function () { return fetchText(url, attempt + 1); });
    });
  }

  function append(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var batch = tpl.content.querySelector(".more-batch");
    if (!batch) throw new Error("no photos in the answer");
    batch.querySelectorAll("figure.shot").forEach(function (f) { shots.appendChild(f); });
    return batch.getAttribute("data-next") || "";
  }

  button.addEventListener("click", function () {
    if (button.disabled) return;
    button.disabled = true;
    button.classList.remove("error");
    button.textContent = "Loading…";
    fetchText(button.getAttribute("data-next"), 1).then(append).then(function (next) {
      if (next) {
        button.setAttribute("data-next", next);
        button.disabled = false;
        button.textContent = "More photos";
      } else {
        button.remove();
        shots.classList.add("complete");
      }
    }).catch(function () {
      button.disabled = false;
      button.classList.add("error");
      button.textContent = "More photos (try again)";
    });
  });
})();
