// The Square card page (templates/integrations/square_card.html): Square's Web Payments SDK draws
// the card fields in its own frames and turns the card into a single-use token; only the token is
// posted to us. No inline script: the page's Content-Security-Policy allows our files and Square's SDK.
(function () {
  "use strict";
  var form = document.getElementById("square-card-form");
  if (!form) { return; }
  var status = document.getElementById("square-card-status");
  var button = form.querySelector("button[type=submit]");

  function say(text) { status.textContent = text; }

  async function start() {
    if (!window.Square) {
      say("The secure card form could not be loaded. Please try again later, or call the clinic.");
      return;
    }
    var payments = window.Square.payments(form.dataset.applicationId, form.dataset.locationId);
    var card = await payments.card();
    await card.attach("#card-container");
    button.disabled = false;
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (button.disabled) { return; }
      button.disabled = true;
      say("Saving…");
      try {
        var result = await card.tokenize();
        if (result.status === "OK" && result.token) {
          form.elements.source_token.value = result.token;
          form.submit();
          return;
        }
        say("Please check the card details and try again.");
      } catch (err) {
        say("The card could not be read. Please try again.");
      }
      button.disabled = false;
    });
  }

  start().catch(function () {
    say("The secure card form could not be loaded. Please try again later, or call the clinic.");
  });
}());
