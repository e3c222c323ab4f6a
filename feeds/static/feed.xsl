<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an RSS 2.0 or Atom 1.0 feed as a readable page when a person opens it in a
     browser that sends no Fetch Metadata (others get the feed's HTML page, see
     feeds/feedpage.py); feed readers ignore the xml-stylesheet instruction. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="rss/channel/title | atom:feed/atom:title"/>
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
          .about { background: #fff8e1; border: 1px solid #f0d98c; padding: .75rem 1rem; border-radius: 6px }
          code { background: #eee; padding: 0 .25rem; word-break: break-all }
          li { margin: .75rem 0 } time { color: #666; font-size: .9em; margin-left: .5rem }
          .summary { margin: .25rem 0 0; color: #444 }
        </style>
      </head>
      <body>
        <p class="about"><strong>This is a web feed.</strong> Feed readers follow it for you:
          copy this page's address into your reader (Feedly, NetNewsWire, Thunderbird, …)
          to be told of every new post.</p>
        <h1><xsl:value-of select="$title"/></h1>
        <p><xsl:value-of select="rss/channel/description | atom:feed/atom:subtitle"/></p>
        <h2>Latest posts</h2>
        <ul>
          <xsl:apply-templates select="rss/channel/item | atom:feed/atom:entry"/>
        </ul>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <a href="{link}"><xsl:value-of select="title"/></a>
      <time><xsl:value-of select="substring(pubDate, 6, 11)"/></time>
      <p class="summary"><xsl:value-of select="description"/></p>
    </li>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li>
      <a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a>
      <time><xsl:value-of select="substring(atom:published, 1, 10)"/></time>
      <p class="summary"><xsl:value-of select="atom:summary"/></p>
    </li>
  </xsl:template>
</xsl:stylesheet>
