/**
 * PDF text for the API's attachments, in a Worker of its own: pdf.js (through `unpdf`) is about
 * 2 MB, five times the API's whole bundle. The API reaches it through the PDF_TEXT service
 * binding: POST the PDF's bytes, get `{text, pages}` back (422 for bytes pdf.js cannot read).
 */
import { extractText, getDocumentProxy } from "unpdf";

export default {
  async fetch(request: Request): Promise<Response> {
    if (request.method !== "POST") return Response.json({ error: "POST a PDF's bytes" }, { status: 405 });
    try {
      const pdf = await getDocumentProxy(new Uint8Array(await request.arrayBuffer()));
      const { text, totalPages } = await extractText(pdf, { mergePages: true });
      return Response.json({ text, pages: totalPages });
    } catch (error) {
      return Response.json({ error: `not a readable PDF: ${String(error)}` }, { status: 422 });
    }
  },
} satisfies ExportedHandler;
