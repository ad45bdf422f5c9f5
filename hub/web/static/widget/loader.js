/* omnihub site chat: the loader, the only code of the hub that runs in the host page.
 *
 * <script src="https://HUB/widget.js" data-key="KEY" async></script>
 *
 * It asks the hub whether this origin may show the widget, then adds a launcher button and
 * the chat's <iframe> (the hub's origin, its own strict CSP) inside a closed shadow root.
 * The session token lives in this site's localStorage and reaches the frame by postMessage;
 * messages are accepted only from the hub's origin and from our own frame's window.
 * Plain ES2017, one IIFE, nothing global but window.omnihubWidget {open, close, toggle, frame}.
 */
(function () {
  "use strict";

  // The tag (document.currentScript is null only in odd cases: then the first such tag).
  var script = document.currentScript || document.querySelector('script[data-key][src*="/widget.js"]');
  if (!script || !script.src) return;
  var key = script.getAttribute("data-key") || "";
  var hub;
  try {
    hub = new URL(script.src, location.href).origin;
  } catch (error) {
    return;
  }
  if (!key) {
    console.error("omnihub widget: the script tag has no data-key");
    return;
  }
  if (window.omnihubWidget && window.omnihubWidget.key === key) return; // the tag twice

  var TOKEN_KEY = "omnihub:" + key + ":token";
  var FIRST_KEY = "omnihub:" + key + ":first";
  var QUEUE_KEY = "omnihub:" + key + ":queue";
  var TEXTS = {
    en: { open: "Open chat", close: "Close chat", frame: "Chat", unread: "unread messages" },
    ru: { open: "Открыть чат", close: "Закрыть чат", frame: "Чат", unread: "непрочитанных сообщений" },
  };

  function storageGet(name, store) {
    try {
      return (store || window.localStorage).getItem(name);
    } catch (error) {
      return null; // storage blocked: the visitor gets a new session per page load
    }
  }

  function storageSet(name, value, store) {
    try {
      if (value === null) (store || window.localStorage).removeItem(name);
      else (store || window.localStorage).setItem(name, value);
    } catch (error) {
      /* storage blocked or full */
    }
  }

  function session() {
    try {
      return window.sessionStorage;
    } catch (error) {
      return null;
    }
  }

  // What the visitor sent and the hub has not acknowledged, kept here for a frame whose own
  // (third-party) storage the browser blocks; it survives a reload of this tab.
  function storedQueue() {
    var store = session();
    if (!store) return null;
    try {
      var items = JSON.parse(storageGet(QUEUE_KEY, store) || "null");
      return Array.isArray(items) ? items : null;
    } catch (error) {
      return null;
    }
  }

  function attr(name) {
    var value = script.getAttribute(name);
    return value === null || value === "" ? null : value;
  }

  // ----- what the frame is told: the page, the first visit, the site's user, the language
  // Cut to what the hub accepts (a longer field would be a malformed hello).
  function cut(value, limit) {
    return typeof value === "string" ? value.slice(0, limit) : "";
  }
  var page = { url: cut(location.href, 2000), referrer: cut(document.referrer, 2000), origin: location.origin };
  var firstVisit = null;
  try {
    var stored = JSON.parse(storageGet(FIRST_KEY) || "null");
    if (stored && typeof stored === "object" && typeof stored.url === "string") {
      firstVisit = {
        url: cut(stored.url, 2000),
        referrer: cut(stored.referrer, 2000),
        at: typeof stored.at === "string" ? stored.at : null,
      };
    }
  } catch (error) {
    firstVisit = null;
  }
  if (!firstVisit) {
    firstVisit = { url: page.url, referrer: page.referrer, at: new Date().toISOString() };
    storageSet(FIRST_KEY, JSON.stringify(firstVisit));
  }
  var user = null;
  if (attr("data-user-id")) {
    user = { id: cut(attr("data-user-id"), 128), hash: cut(attr("data-user-hash"), 256) };
    if (attr("data-user-name")) user.name = cut(attr("data-user-name"), 200);
    if (attr("data-user-email")) user.email = cut(attr("data-user-email"), 320);
    if (attr("data-user-phone")) user.phone = cut(attr("data-user-phone"), 40);
  }
  var wanted = (attr("data-language") || "").toLowerCase();
  var language = wanted === "ru" || wanted === "en" ? wanted : null;

  function uiLanguage(config) {
    if (language) return language;
    if (config.language === "ru" || config.language === "en") return config.language;
    return /^ru\b/i.test(navigator.language || "") ? "ru" : "en";
  }

  function safeColor(value) {
    return typeof value === "string" && /^#[0-9a-fA-F]{3,8}$/.test(value) ? value : "#2f6feb";
  }

  // ----- the hub decides whether this origin shows the widget
  var configUrl = hub + "/widget/v1/config?key=" + encodeURIComponent(key);
  fetch(configUrl, { mode: "cors", credentials: "omit" })
    .then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (data) {
          if (!response.ok || !data || !data.widget) {
            var error = data && data.error;
            var reason =
              (data && data.message) ||
              (error && typeof error === "object" ? error.message : error) ||
              "HTTP " + response.status;
            console.error("omnihub widget: " + reason);
            return;
          }
          whenBody(function () {
            build(data.widget);
          });
        });
    })
    .catch(function (error) {
      console.error("omnihub widget: the hub is unreachable (" + (error && error.message) + ")");
    });

  function whenBody(fn) {
    if (document.body) fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  var CSS =
    ":host{all:initial}" +
    ".launcher{position:fixed;bottom:20px;right:20px;z-index:2147483646;width:56px;height:56px;" +
    "border:none;border-radius:50%;padding:0;cursor:pointer;color:#fff;display:flex;" +
    "align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".launcher:focus-visible{outline:3px solid #1f2328;outline-offset:3px}" +
    ".launcher svg{width:28px;height:28px;fill:currentColor}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 5px;" +
    "box-sizing:border-box;border-radius:10px;background:#cf222e;color:#fff;" +
    "font:600 12px/20px system-ui,sans-serif;text-align:center}" +
    ".badge[hidden],.panel[hidden],.open .icon-chat,.box:not(.open) .icon-close{display:none}" +
    ".panel{position:fixed;bottom:88px;right:20px;z-index:2147483647;width:370px;height:560px;" +
    "max-height:calc(100vh - 108px);border:none;border-radius:12px;background:#fff;" +
    "box-shadow:0 8px 32px rgba(0,0,0,.25);color-scheme:normal}" +
    ".left .launcher,.left .panel{right:auto;left:20px}" +
    "@media (max-width:480px){.panel,.left .panel{left:0;right:0;top:0;bottom:0;width:100%;" +
    "height:100%;max-height:none;border-radius:0}.open .launcher{display:none}}";

  function svg(path) {
    var ns = "http://www.w3.org/2000/svg";
    var icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    var shape = document.createElementNS(ns, "path");
    shape.setAttribute("d", path);
    icon.appendChild(shape);
    return icon;
  }
  var CHAT_ICON = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  var CLOSE_ICON =
    "M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 0 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 " +
    "1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z";

  function build(config) {
    var texts = TEXTS[uiLanguage(config)];
    var host = document.createElement("div");
    host.setAttribute("data-omnihub", "widget");
    var root = host.attachShadow({ mode: "closed" });
    if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function") {
      // A constructed sheet: no <style> element in the host page.
      try {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
      } catch (error) {
        addStyle(root);
      }
    } else {
      addStyle(root);
    }
    var box = document.createElement("div");
    box.className = /left/i.test(String(config.position || "")) ? "box left" : "box right";

    var launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "launcher";
    launcher.setAttribute("data-omnihub", "launcher");
    launcher.setAttribute("aria-haspopup", "dialog");
    launcher.setAttribute("aria-controls", "omnihub-panel");
    launcher.style.backgroundColor = safeColor(config.color); // CSSOM: not an inline style
    var chatIcon = svg(CHAT_ICON);
    chatIcon.setAttribute("class", "icon-chat");
    var closeIcon = svg(CLOSE_ICON);
    closeIcon.setAttribute("class", "icon-close");
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    launcher.appendChild(chatIcon);
    launcher.appendChild(closeIcon);
    launcher.appendChild(badge);

    var frame = document.createElement("iframe");
    frame.id = "omnihub-panel";
    frame.className = "panel";
    frame.hidden = true;
    frame.setAttribute("data-omnihub", "frame");
    frame.setAttribute("title", typeof config.title === "string" && config.title ? config.title : texts.frame);
    frame.setAttribute(
      "sandbox",
      "allow-scripts allow-same-origin allow-forms allow-downloads allow-popups allow-popups-to-escape-sandbox",
    );
    frame.src =
      hub +
      "/widget/frame?key=" +
      encodeURIComponent(key) +
      "&host=" +
      encodeURIComponent(location.origin);

    var opened = false;
    var unread = 0;

    function post(message) {
      if (!frame.contentWindow) return;
      message.omnihub = 1;
      frame.contentWindow.postMessage(message, hub);
    }

    function render() {
      box.classList.toggle("open", opened);
      frame.hidden = !opened;
      var label = opened ? texts.close : texts.open;
      if (!opened && unread > 0) label += " (" + unread + " " + texts.unread + ")";
      launcher.setAttribute("aria-label", label);
      launcher.setAttribute("title", opened ? texts.close : texts.open);
      launcher.setAttribute("aria-expanded", opened ? "true" : "false");
      badge.hidden = opened || unread <= 0;
      badge.textContent = unread > 99 ? "99+" : String(unread);
    }

    function open() {
      if (opened) return;
      opened = true;
      render();
      post({ type: "panel", open: true });
      try {
        frame.focus();
      } catch (error) {
        /* nothing to focus yet */
      }
    }

    function close() {
      if (!opened) return;
      opened = false;
      render();
      post({ type: "panel", open: false });
      launcher.focus();
    }

    launcher.addEventListener("click", function () {
      if (opened) close();
      else open();
    });

    window.addEventListener("message", function (event) {
      if (event.origin !== hub || event.source !== frame.contentWindow) return;
      var data = event.data;
      if (!data || typeof data !== "object" || data.omnihub !== 1) return;
      if (data.type === "ready") {
        post({
          type: "init",
          token: storageGet(TOKEN_KEY),
          page: page,
          first_visit: firstVisit,
          user: user,
          // the tag's language, else the widget's own (null: "auto", the browser's)
          language: language || (config.language === "ru" || config.language === "en" ? config.language : null),
          queue: storedQueue(),
        });
        post({ type: "panel", open: opened });
      } else if (data.type === "token") {
        if (typeof data.token === "string" && data.token.length <= 200) storageSet(TOKEN_KEY, data.token);
      } else if (data.type === "queue") {
        var store = session();
        if (!store) return;
        var items = Array.isArray(data.items) && data.items.length ? JSON.stringify(data.items) : null;
        if (items === null || items.length <= 256 * 1024) storageSet(QUEUE_KEY, items, store);
      } else if (data.type === "unread") {
        var count = Number(data.count);
        unread = isFinite(count) && count > 0 ? Math.floor(count) : 0;
        render();
      } else if (data.type === "close") {
        close();
      }
    });

    render();
    box.appendChild(frame);
    box.appendChild(launcher);
    root.appendChild(box);
    document.body.appendChild(host);

    window.omnihubWidget = {
      key: key,
      open: open,
      close: close,
      toggle: function () {
        if (opened) close();
        else open();
      },
      isOpen: function () {
        return opened;
      },
      frame: function () {
        return frame;
      },
    };
  }

  function addStyle(root) {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }
})();
