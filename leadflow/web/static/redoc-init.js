// Starts ReDoc on /redoc. A file rather than an inline script, so the page's policy can refuse inline scripts.
// ReDoc writes its styles into <style> elements; it marks them with this script's nonce, which the policy names.
// (The nonce is read from the script, not from an attribute of the page: browsers blank nonce attributes.)
"use strict";
var root = document.getElementById("redoc");
Redoc.init(root.dataset.specUrl, { nonce: document.currentScript.nonce }, root);
