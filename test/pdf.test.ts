import { describe, expect, it } from "vitest";
import { call, callJson, createUser, rowsInShards, type TestUser } from "./helpers";

/** A one-page PDF with `lines` of Helvetica text, with a correct cross-reference table. */
function pdfWithText(lines: string[]): Uint8Array {
  const content = `BT /F1 12 Tf 72 720 Td ${lines.map((line, i) => `${i ? "0 -16 Td " : ""}(${line}) Tj`).join(" ")} ET`;
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let pdf = "%PDF-1.4\n";
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((offset) => `${String(offset).padStart(10, "0")} 00000 n \n`).join("")}`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return new TextEncoder().encode(pdf);
}

async function uploadPdf(user: TestUser, bytes: Uint8Array, filename: string) {
  // ASCII, so the bytes travel as a string body unchanged.
  return callJson(`/files/?filename=${filename}`, { token: user.access, body: new TextDecoder().decode(bytes), headers: { "Content-Type": "application/pdf" }, status: 201 });
}

describe("PDF attachments", () => {
  it("reads a PDF's text once, at upload, and the model gets it as text on every turn of the branch", async () => {
    const user = await createUser();
    const file = await uploadPdf(user, pdfWithText(["Quarterly report", "Revenue grew 12 percent"]), "report.pdf");
    expect(file.media_type).toBe("application/pdf");
    const [row] = await rowsInShards<{ text_bytes: number }>("SELECT text_bytes FROM files WHERE id = ?", file.id);
    expect(row!.text_bytes).toBeGreaterThan(20);

    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "Summarize it", attachments: [file.id] }, status: 201 });
    expect(turn.ai_message.content).toContain('a text file, report.pdf, starting "Quarterly report');
    const later = await callJson(`/conversations/${turn.conversation.id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] and?" }, status: 201 });
    expect(later.ai_message.content).toContain("Revenue grew 12 percent");
  });

  it("a PDF with no readable text goes to the model as a line saying so", async () => {
    const user = await createUser();
    const empty = new TextEncoder().encode("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    const file = await uploadPdf(user, empty, "blank.pdf");
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: echo=history] what is in it?", attachments: [file.id] }, status: 201 });
    expect(turn.ai_message.content).toContain("[A PDF, blank.pdf, is attached; no text could be read from it.]");
    // The bytes are still served as they were uploaded.
    expect(new Uint8Array(await (await call(`/files/${file.id}/content`, { token: user.access })).arrayBuffer())).toEqual(empty);
  });
});
