// Swagger UI over the service's own OpenAPI document; a file of its own, not an inline script,
// so that the page's Content-Security-Policy can allow only this origin's scripts.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
