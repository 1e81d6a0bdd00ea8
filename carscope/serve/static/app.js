// carscope upload page: drag-and-drop, a preview and a size check. The form works without this script.
(function () {
  "use strict";
  function formatBytes(n) {
    return n < 1048576 ? (n / 1024).toFixed(0) + " KB" : (n / 1048576).toFixed(1) + " MB";
  }
  function setup(form) {
    var zone = form.querySelector("[data-dropzone]");
    var input = form.querySelector("input[type=file]");
    var preview = form.querySelector("[data-preview]");
    var img = form.querySelector("[data-preview-img]");
    var caption = form.querySelector("[data-preview-caption]");
    var error = form.querySelector("[data-client-error]");
    var submit = form.querySelector("[data-submit]");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var objectUrl = null;
    form.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });

    function showError(msg) {
      error.textContent = msg;
      error.hidden = !msg;
    }
    function show(file) {
      showError("");
      if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
      if (!file) { preview.hidden = true; return; }
      if (maxBytes && file.size > maxBytes) {
        showError("This file is " + formatBytes(file.size) + "; the limit is " + formatBytes(maxBytes) + ".");
      }
      caption.textContent = file.name + " (" + formatBytes(file.size) + ")";
      if (/^image\//.test(file.type)) {
        objectUrl = URL.createObjectURL(file);
        img.src = objectUrl;
        img.hidden = false;
      } else {
        img.hidden = true;  // the server will say what is wrong with it
      }
      preview.hidden = false;
    }
    input.addEventListener("change", function () { show(input.files && input.files[0]); });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("dragover"); });
    });
    ["dragleave", "dragend", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("dragover"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        show(input.files[0]);
        input.focus();
      }
    });
    form.addEventListener("submit", function (e) {
      var file = input.files && input.files[0];
      if (file && maxBytes && file.size > maxBytes) { e.preventDefault(); input.focus(); return; }
      submit.disabled = true;
      submit.textContent = "Identifying\u2026";
    });
    // Back/forward cache restores a disabled button; re-enable it.
    window.addEventListener("pageshow", function () { submit.disabled = false; submit.textContent = "Identify the car"; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.upload").forEach(setup);
  });
})();
