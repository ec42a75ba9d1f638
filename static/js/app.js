// A select whose options carry data-help keeps the help of the field it names (data-help-target) in
// step with the choice: the redeem form's quantity is a count of treatments or a dollar amount.
document.addEventListener("change", function (event) {
  var select = event.target;
  if (!select.dataset || !select.dataset.helpTarget || !select.options) return;
  var option = select.options[select.selectedIndex];
  var help = document.getElementById(select.dataset.helpTarget);
  if (help && option && option.dataset.help) help.textContent = option.dataset.help;
});

// Forms marked data-once disable their submit button on submit, so a double click sends one request.
// The server-side form token is the real guard; this only saves a round trip.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.hasAttribute("data-once")) return;
  if (form.dataset.submitted === "1") { event.preventDefault(); return; }
  form.dataset.submitted = "1";
  // A disabled button is left out of what the form sends: the pressed one's name and value (which
  // choice the person made, e.g. "opt-out" or "resume") travel in a hidden field instead.
  var pressed = event.submitter;
  if (pressed && pressed.name) {
    var carried = document.createElement("input");
    carried.type = "hidden";
    carried.name = pressed.name;
    carried.value = pressed.value;
    form.appendChild(carried);
  }
  form.querySelectorAll("button[type=submit]").forEach(function (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = button.textContent + "…";
  });
});
