// Forms marked data-once disable their submit button on submit, so a double click sends one request.
// The server-side form token is the real guard; this only saves a round trip.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.hasAttribute("data-once")) return;
  if (form.dataset.submitted === "1") { event.preventDefault(); return; }
  form.dataset.submitted = "1";
  form.querySelectorAll("button[type=submit]").forEach(function (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = button.textContent + "…";
  });
});
