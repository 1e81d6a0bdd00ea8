// The spa layout's app: renders the page's __NEXT_DATA__ into #root (links, specs) and the vehicle gallery
// from the media API (window.__APP_CONFIG__.mediaApi). #root gets the class "ready" once all of it is there.
// A plain HTTP fetch of a page sees an empty #root (see SITE.md, "Layout spa").
(function () {
  "use strict";
  var root = document.getElementById("root");
  var dataEl = document.getElementById("__NEXT_DATA__");
  if (!root || !dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var props = data.props.pageProps;
  var config = window.__APP_CONFIG__ || {};

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { if (attrs[k] != null) e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }

  function link(cls, href, text) { return el("a", { "class": cls, href: href }, text); }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // The site's faults (5xx, 429, truncated bodies) hit at most two attempts of a URL: retry a few times.
  function fetchJson(url, attempt) {
    return fetch(url, { headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).catch(function (err) {
      if (attempt >= 4) throw err;
      return sleep(Math.min(3000, 400 * attempt)).then(function () { return fetchJson(url, attempt + 1); });
    });
  }

  function home() {
    root.appendChild(el("h1", {}, "New cars"));
    var ul = el("ul", { "class": "makes" });
    props.makes.forEach(function (m) { var li = el("li"); li.appendChild(link("make", m.href, m.name)); ul.appendChild(li); });
    root.appendChild(ul);
  }

  function makePage() {
    var nav = el("nav", { "class": "crumbs" });
    nav.appendChild(link("home", "/", "All makes"));
    root.appendChild(nav);
    root.appendChild(el("h1", {}, props.make.name));
    props.models.forEach(function (md) {
      var card = el("div", { "class": "model" });
      card.appendChild(el("h2", { "class": "model-name" }, md.name));
      md.years.forEach(function (y) { card.appendChild(link("year", y.href, String(y.year))); });
      root.appendChild(card);
    });
  }

  function gallery(items) {
    var g = el("div", { "class": "gallery" });
    items.forEach(function (it) {
      g.appendChild(el("img", { "class": "photo", src: it.url, "data-thumb": it.thumb, "data-kind": it.kind,
                                alt: it.kind ? it.kind + " photo" : "photo", width: "320", height: "240" }));
    });
    return g;
  }

  function vehiclePage() {
    var v = props.vehicle;
    var nav = el("nav", { "class": "crumbs" });
    nav.appendChild(link("home", "/", "All makes"));
    nav.appendChild(document.createTextNode(" / "));
    nav.appendChild(link("make", props.make.href, props.make.name));
    root.appendChild(nav);
    root.appendChild(el("h1", { "class": "vehicle-name" }, v.year + " " + v.make + " " + v.model));
    var table = el("table", { "class": "specs" });
    v.specs.forEach(function (s) {
      var tr = el("tr");
      tr.appendChild(el("th", {}, s.label));
      tr.appendChild(el("td", {}, s.value));
      table.appendChild(tr);
    });
    root.appendChild(table);
    var p = el("p");
    p.appendChild(link("compare", props.compareHref, "Compare"));
    root.appendChild(p);
    var holder = el("div", { "class": "gallery-holder" }, "Loading photos…");
    root.appendChild(holder);
    return fetchJson(config.mediaApi, 1).then(function (m) {
      holder.textContent = "";
      holder.appendChild(gallery(m.items));
      root.setAttribute("data-count", String(m.items.length));
    });
  }

  var pages = { "/": home, "/m/[make]": makePage, "/v/[id]": vehiclePage };
  Promise.resolve((pages[data.page] || function () {})()).then(function () {
    root.classList.add("ready");
  }).catch(function (err) {
    root.classList.add("error");
    root.appendChild(el("p", { "class": "error" }, "Could not load (" + err.message + "). Reload the page to retry."));
  });
})();
