// imgsearch web page: drag-and-drop and paste of a query image, the hybrid weight slider,
// and click feedback. The page works without it; this only adds conveniences.
(function () {
  "use strict";
  var form = document.getElementById("search");
  if (!form) return;
  var fileInput = document.getElementById("image");
  var text = document.getElementById("q");
  var weightRow = document.getElementById("weight-row");
  var weight = document.getElementById("image_weight");
  var weightValue = document.getElementById("weight-value");
  var drop = document.getElementById("drop");
  var status = document.getElementById("image-status");
  var imageName = document.getElementById("image-name");
  var preview = document.getElementById("image-preview");

  // The chosen file is named, and shown, where the browser would say "No file chosen".
  function showChosen(file) {
    if (imageName) imageName.textContent = file ? "Using " + (file.name || "the pasted image") : "No image yet";
    if (!preview) return;
    if (preview.src) URL.revokeObjectURL(preview.src);
    if (file) { preview.src = URL.createObjectURL(file); preview.hidden = false; }
    else { preview.removeAttribute("src"); preview.hidden = true; }
    var shown = document.getElementById("query-image");
    if (file && shown) shown.remove();
  }
  var maxBytes = Number(form.dataset.maxBytes) || 0;

  function keptImage() { return form.querySelector("input[name=image_b64]"); }
  function hasImage() {
    return (fileInput.files && fileInput.files.length > 0) || !!keptImage();
  }

  // An image goes up as multipart (POST); text alone stays a bookmarkable GET.
  function sync() {
    var image = hasImage();
    weightRow.hidden = !(image && text.value.trim());
    form.method = image ? "post" : "get";
    form.enctype = image ? "multipart/form-data" : "application/x-www-form-urlencoded";
  }

  function say(message) { status.textContent = message; }

  function useFile(file, submit) {
    if (!file) return;
    if (!/^image\//.test(file.type)) {
      say("“" + file.name + "” is not an image; choose a JPEG, PNG, WebP or GIF file.");
      return;
    }
    if (maxBytes && file.size > maxBytes) {
      say("“" + file.name + "” is " + Math.round(file.size / 1048576) +
          " MB, over the limit of " + Math.round(maxBytes / 1048576) + " MB.");
      return;
    }
    var transfer = new DataTransfer();
    transfer.items.add(file);
    fileInput.files = transfer.files;
    var kept = keptImage();
    if (kept) kept.remove();
    showChosen(file);
    say("Searching with " + (file.name || "the pasted image") + "…");
    sync();
    if (submit) form.requestSubmit();
  }

  function firstImage(list) {
    for (var i = 0; list && i < list.length; i++) {
      if (/^image\//.test(list[i].type)) return list[i];
    }
    return list && list.length ? list[0] : null;
  }

  fileInput.addEventListener("change", function () {
    if (fileInput.files.length) {
      var kept = keptImage();
      if (kept) kept.remove();
      showChosen(fileInput.files[0]);
      say("Ready: press Search to search with " + fileInput.files[0].name + ".");
    }
    sync();
  });
  text.addEventListener("input", sync);

  // A text search's address keeps only the fields that say something, so it reads well
  // and can be shared; the fields come back when the page is shown again (history).
  form.addEventListener("submit", function () {
    sync();
    if (form.method !== "get") return;
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && !field.disabled && (field === fileInput || field === weight ||
          ((field.tagName === "INPUT" || field.tagName === "SELECT") && field.value === ""))) {
        field.disabled = true;
        field.dataset.skipped = "1";
      }
    });
  });
  window.addEventListener("pageshow", function () {
    form.querySelectorAll("[data-skipped]").forEach(function (field) {
      field.disabled = false;
      delete field.dataset.skipped;
    });
  });

  if (weight && weightValue) {
    weight.addEventListener("input", function () {
      weightValue.textContent = Math.round(weight.value * 100) + "% image";
    });
  }

  var clear = document.getElementById("clear-image");
  if (clear) {
    clear.addEventListener("click", function () {
      var shown = document.getElementById("query-image");
      if (shown) shown.remove();
      fileInput.value = "";
      showChosen(null);
      say("Image removed.");
      sync();
      text.focus();
    });
  }

  // Files may be dropped anywhere on the page; the drop zone shows where they go.
  document.addEventListener("dragover", function (event) {
    if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
      event.preventDefault();
      drop.classList.add("dragging");
    }
  });
  document.addEventListener("dragleave", function (event) {
    if (!event.relatedTarget) drop.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    drop.classList.remove("dragging");
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    useFile(firstImage(event.dataTransfer.files), true);
  });

  // Paste an image (Ctrl+V) anywhere; pasting text into a field is left alone.
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    var file = data ? firstImage(data.files) : null;
    if (!file || !/^image\//.test(file.type)) return;
    event.preventDefault();
    useFile(file, true);
  });

  // Click feedback for search quality reports; never in the way of the navigation.
  var grid = document.querySelector(".grid[data-search-id]");
  if (grid && navigator.sendBeacon) {
    grid.addEventListener("click", function (event) {
      var link = event.target.closest("a");
      var card = link && link.closest(".card");
      if (!card || link.classList.contains("more")) return;
      var body = JSON.stringify({
        search_id: grid.dataset.searchId, item_id: card.dataset.id,
        position: Number(card.dataset.position)
      });
      navigator.sendBeacon("/v1/feedback/click", new Blob([body], {type: "application/json"}));
    });
  }

  sync();
})();
