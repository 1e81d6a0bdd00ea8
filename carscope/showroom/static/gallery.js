// The showroom's photo gallery: fetched as JSON, built in the page, images lazy-loaded on scroll.
// A plain HTTP fetch of the photos page sees none of this; a browser sees every photo (see SITE.md).
(function () {
  "use strict";
  var root = document.getElementById("gallery");
  if (!root) return;

  function lazy(imgs) {
    function load(img) {
      if (img.dataset.loaded) return;
      img.dataset.loaded = "1";
      img.setAttribute("srcset", img.getAttribute("srcset-data"));
      img.setAttribute("sizes", "(max-width: 700px) 320px, 640px");
      img.src = img.dataset.src;
    }
    if (!("IntersectionObserver" in window)) { imgs.forEach(load); return; }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { load(e.target); io.unobserve(e.target); }
      });
    }, { rootMargin: "200px 0px" });
    imgs.forEach(function (img) { io.observe(img); });
  }

  function photo(p, view) {
    var img = document.createElement("img");
    img.className = "photo";
    img.alt = view ? view + " photo" : "photo";
    img.src = "/static/blank.gif";
    img.width = 320; img.height = 240;
    img.setAttribute("data-src", p.src);
    img.setAttribute("srcset-data", p.srcset);
    img.setAttribute("data-srcset", p.srcset);
    if (view) img.setAttribute("data-view", view);
    return img;
  }

  function build(data) {
    var all = [];
    var g = document.createElement("div");
    if (data.layout === "tabs") {
      g.className = "gallery tabbed";
      var tabs = document.createElement("div");
      tabs.className = "tabs";
      g.appendChild(tabs);
      ["exterior", "interior"].forEach(function (view, i) {
        var b = document.createElement("button");
        b.className = "tab" + (i === 0 ? " active" : "");
        b.setAttribute("data-view", view);
        b.textContent = view === "exterior" ? "Exterior" : "Interior";
        tabs.appendChild(b);
        var panel = document.createElement("div");
        panel.className = "panel";
        panel.setAttribute("data-view", view);
        if (i !== 0) panel.hidden = true;
        data.photos.forEach(function (p) {
          if (p.view === view) { var img = photo(p, view); panel.appendChild(img); all.push(img); }
        });
        g.appendChild(panel);
        b.addEventListener("click", function () {
          g.querySelectorAll("button.tab").forEach(function (t) { t.classList.toggle("active", t === b); });
          g.querySelectorAll("div.panel").forEach(function (pn) {
            pn.hidden = pn.getAttribute("data-view") !== view;
          });
        });
      });
    } else {
      g.className = "gallery mixed";
      data.photos.forEach(function (p) { var img = photo(p, null); g.appendChild(img); all.push(img); });
    }
    root.appendChild(g);
    root.setAttribute("data-count", String(all.length));
    lazy(all);
    root.classList.add("ready");
  }

  fetch(root.getAttribute("data-gallery"), { headers: { "Accept": "application/json" } })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(build)
    .catch(function (err) {
      root.classList.add("error");
      root.textContent = "The gallery could not be loaded (" + err.message + "). Reload the page to retry.";
    });
})();
